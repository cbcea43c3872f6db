"""Colour of an RGB prediction against its reference: value histograms per channel, and
their earth mover's distance in 8-bit levels, everywhere, in tissue and in background."""

from __future__ import annotations

from typing import Any

import numpy as np

from utom_core.domain import DTYPE_RANGE, Normalisation
from utom_core.evaluation.base import Region, StreamingEvaluator, core_rows
from utom_core.evaluation.metrics import core_mask

COLOR_BINS = 256
"""Histogram bins on [-1, 1] for colour distances: one bin per 8-bit level."""
COLOR_EDGES = np.linspace(-1.0, 1.0, COLOR_BINS + 1)


def histogram(values: np.ndarray) -> np.ndarray:
    """Counts of values on [-1, 1] in ``COLOR_BINS`` bins."""
    return np.histogram(values, COLOR_EDGES)[0]


DEFAULT_LEVEL_STEP = 2.0 / COLOR_BINS * 127.5
"""A ``histogram`` bin in 8-bit levels where [-1, 1] spans 0–255."""


def level_steps(norm: Normalisation | None) -> list[float]:
    """Width of a ``histogram`` bin per RGB channel in 8-bit levels of the raw pixels: through
    the target's fitted range where known (a range fitted to 0.5–99.5 % spans fewer levels
    than 255, and 16-bit RGB is rescaled to 8 bits), else the full 0–255 range."""
    if norm is None:
        return [DEFAULT_LEVEL_STEP] * 3
    full = DTYPE_RANGE.get(norm.dtype, (0.0, 255.0))[1]
    spans = [high - low for low, high in zip(norm.low, norm.high, strict=True)]
    return [2.0 / COLOR_BINS * span / 2 * 255.0 / full for span in spans * (3 // len(spans))]


def wasserstein_of(counts: np.ndarray, size: int, other: np.ndarray, other_size: int,
                   step: float = DEFAULT_LEVEL_STEP) -> float:
    """1D earth mover's distance of two histograms of bins ``step`` wide, in ``step``'s units
    (default: ``histogram``'s bins on [-1, 1], in 8-bit levels)."""
    cdf, other_cdf = np.cumsum(counts) / size, np.cumsum(other) / other_size
    return float(np.abs(cdf - other_cdf).sum() * step)


def colour_regions(region: Region) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(prediction mask, reference mask) of the region's own rows: everywhere (key ""), in
    tissue and in background (each image's own content mask); empty unless both are RGB."""
    sample = region.sample
    pred, ref = sample.prediction, sample.reference
    if ref is None or pred.shape[0] != 3 or ref.shape[0] != 3:
        return {}
    regions = {"": (np.ones(pred.shape[1:], bool)[..., region.core, :],
                    np.ones(ref.shape[1:], bool)[..., region.core, :])}
    if sample.output_saliency is not None:
        pred_tissue = core_mask(pred, sample.output_saliency, region)
        ref_tissue = core_mask(ref, sample.output_saliency, region)
        regions["_tissue"] = (pred_tissue, ref_tissue)
        regions["_background"] = (~pred_tissue, ~ref_tissue)
    return regions


class ColorAccumulator:
    """Per-channel value histograms of prediction and reference: everywhere, in tissue and in
    background (each image's own content mask)."""

    def __init__(self) -> None:
        self.hists: dict[str, list[Any]] = {}
        """Per key: [prediction histograms per channel, pixels, reference ones, pixels]."""
        self.steps = [DEFAULT_LEVEL_STEP] * 3
        """Width of a histogram bin per channel, in 8-bit levels of the target's raw pixels."""

    def add(self, region: Region) -> None:
        regions, reference = colour_regions(region), region.sample.reference
        if not regions or reference is None:
            return
        self.steps = level_steps(region.sample.output_normalisation)
        pred_core = core_rows(region.sample.prediction, region)
        ref_core = core_rows(reference, region)
        for key, (pred_mask, ref_mask) in regions.items():
            entry = self.hists.setdefault(key, [[0] * 3, 0, [0] * 3, 0])
            for c in range(3):
                entry[0][c] = entry[0][c] + histogram(pred_core[c][pred_mask])
                entry[2][c] = entry[2][c] + histogram(ref_core[c][ref_mask])
            entry[1] += int(pred_mask.sum())
            entry[3] += int(ref_mask.sum())

    def result(self) -> dict[str, float]:
        metrics = {}
        for key, (pred, pred_size, ref, ref_size) in self.hists.items():
            if pred_size and ref_size:
                distances = [wasserstein_of(p, pred_size, r, ref_size, step)
                             for p, r, step in zip(pred, ref, self.steps, strict=True)]
                metrics[f"color_emd{key}"] = float(np.mean(distances))
        return metrics


class ColorFidelity(StreamingEvaluator):
    """Colour distance of an RGB prediction to the reference, in tissue and in background.

    Per channel the earth mover's distance between the two images' value histograms (in 8-bit
    levels), averaged over R, G, B. Tissue and background are each image's own content mask
    (the target domain's operator), so colour is judged even where structures are not aligned.
    """

    name = "color"

    def accumulator(self) -> ColorAccumulator:
        return ColorAccumulator()
