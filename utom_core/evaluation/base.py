"""Evaluators: named metrics computed from a prediction, an optional reference and the input."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

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


class Evaluator(ABC):
    """Computes named metrics; returns only those its inputs allow (none without a reference)."""

    name: str

    @abstractmethod
    def evaluate(self, sample: Sample) -> dict[str, float]: ...
