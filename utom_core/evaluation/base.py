"""Evaluators: named metrics computed from a prediction, an optional reference and the input.

An evaluator sees a whole ``Sample`` (``evaluate``). One that can also *accumulate* its
statistics region by region (``accumulator``) is evaluated on predictions of any size without
loading them whole: ``utom run`` on a whole slide streams it in row strips. All built-in
evaluators do; a third-party one that only implements ``evaluate`` is used on images that fit
in memory and skipped, with a note in the report, on larger ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, overload

import numpy as np

from utom_core.domain import Normalisation
from utom_core.saliency import SaliencyOperator


@dataclass
class Sample:
    """One evaluated image. Arrays are (C, Y, X) or (C, Z, Y, X) on the [-1, 1] scale."""

    prediction: np.ndarray
    reference: np.ndarray | None = None
    input: np.ndarray | None = None
    """The input on its own domain's scale (judged by ``input_saliency``)."""
    baseline: np.ndarray | None = None
    """The input mapped with the target domain's normalisation: what doing nothing scores."""
    input_saliency: SaliencyOperator | None = None
    """Content operator of the input's domain."""
    output_saliency: SaliencyOperator | None = None
    """Content operator of the prediction's (target) domain."""
    output_normalisation: Normalisation | None = None
    """The target domain's fitted range: maps prediction and reference back to raw pixel values
    (CIELAB colour needs the 8-bit sRGB values, not the [-1, 1] scale)."""


@dataclass
class Region:
    """Rows of an evaluated image: ``sample``'s arrays hold them plus a halo of real rows above
    and below (what SSIM windows and saliency blurs need), ``core`` says which rows (the second
    to last axis) are this region's own. ``first_plane`` is the z index of the arrays' first
    plane, so statistics kept per plane (SSIM) add up across regions."""

    sample: Sample
    core: slice
    first_plane: int = 0


class Accumulator(Protocol):
    """Statistics of one evaluator, gathered region by region."""

    def add(self, region: Region) -> None: ...

    def result(self) -> dict[str, float]: ...


class Evaluator(ABC):
    """Computes named metrics; returns only those its inputs allow (none without a reference)."""

    name: str

    @abstractmethod
    def evaluate(self, sample: Sample) -> dict[str, float]: ...

    def accumulator(self) -> Accumulator | None:
        """A fresh accumulator, or None when this evaluator needs whole images."""
        return None


class StreamingEvaluator(Evaluator):
    """An evaluator defined by its accumulator: ``evaluate`` is one region, the whole sample."""

    @abstractmethod
    def accumulator(self) -> Accumulator: ...

    def evaluate(self, sample: Sample) -> dict[str, float]:
        acc = self.accumulator()
        acc.add(Region(sample, slice(None)))
        return acc.result()


@overload
def core_rows(array: np.ndarray, region: Region) -> np.ndarray: ...
@overload
def core_rows(array: None, region: Region) -> None: ...
def core_rows(array: np.ndarray | None, region: Region) -> np.ndarray | None:
    """``array`` cut to the region's own rows."""
    return None if array is None else array[..., region.core, :]


def planes(array: np.ndarray) -> Iterator[np.ndarray]:
    """The (Y, X) planes of one channel of a (Y, X) or (Z, Y, X) array."""
    yield from array.reshape(-1, *array.shape[-2:])
