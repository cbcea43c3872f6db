"""Colour in CIELAB: how far a virtual stain's colours are from the reference's, as a person sees.

RGB histogram distances (``color_emd``) weigh a step in blue like one in green; CIELAB is
built so that equal distances look about equally different (ΔE ≈ 2.3 is just noticeable).
Predictions and references are mapped back to their raw 8-bit sRGB values (the target's
fitted range, ``Sample.output_normalisation``), converted to CIELAB (D65 white), and compared
in tissue and in background, each image's own content mask as ``color_emd`` does, so colour
is judged even where structures are not aligned:

- ``delta_e_*``: ΔE (CIE76) between the two regions' mean Lab colours;
- ``lab_emd_*``: the 1D earth mover's distance between the two regions' value distributions
  of L, a and b, averaged over the three (in Lab units).

Both stream region by region: sums and fixed-bin histograms (``LAB_STEP`` wide, so each
distance is exact to within ``LAB_STEP``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from utom_core.domain import DTYPE_RANGE, Normalisation
from utom_core.evaluation.base import Region, StreamingEvaluator, core_rows
from utom_core.evaluation.colour import colour_regions, wasserstein_of

SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
"""Linear sRGB → CIE XYZ (D65)."""
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)
"""XYZ of sRGB white, the reference white of the Lab conversion."""
LAB_STEP = 0.1
"""Histogram bin width in Lab units: bounds the error of ``lab_emd``."""
LAB_RANGES = ((0.0, 100.0), (-128.0, 128.0), (-128.0, 128.0))
"""Histogram range of L, a and b (values outside go to the end bins)."""
REGIONS = ("_tissue", "_background")


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of 8-bit sRGB values, (3, ...) → (3, ...)."""
    unit = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(unit <= 0.04045, unit / 12.92, ((unit + 0.055) / 1.055) ** 2.4)
    xyz = np.tensordot(SRGB_TO_XYZ, linear, axes=1)
    xyz /= D65_WHITE.reshape(3, *[1] * (xyz.ndim - 1))
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def to_srgb8(unit: np.ndarray, normalisation: Normalisation | None) -> np.ndarray:
    """[-1, 1] values back to 8-bit sRGB: through the target's fitted range where known
    (16-bit RGB rescaled to 8 bits), else read as the full 0–255 range."""
    if normalisation is None:
        return np.clip((unit.astype(np.float64) + 1.0) * 127.5, 0.0, 255.0)
    raw = normalisation.invert(unit).astype(np.float64)
    full = DTYPE_RANGE.get(normalisation.dtype, (0.0, 255.0))[1]
    return raw * (255.0 / full)


@dataclass
class LabStats:
    """Sum, count and per-channel histograms of the Lab values of one image's region."""

    sums: np.ndarray = field(default_factory=lambda: np.zeros(3))
    count: int = 0
    hists: list[np.ndarray] = field(default_factory=lambda: [
        np.zeros(round((hi - lo) / LAB_STEP), np.int64) for lo, hi in LAB_RANGES])

    def add(self, lab: np.ndarray) -> None:
        """Add (3, N) Lab values."""
        self.sums += lab.sum(axis=1)
        self.count += lab.shape[1]
        for hist, values, (lo, _) in zip(self.hists, lab, LAB_RANGES, strict=True):
            bins = np.clip(((values - lo) / LAB_STEP).astype(np.int64), 0, hist.size - 1)
            hist += np.bincount(bins, minlength=hist.size)

    def mean(self) -> np.ndarray:
        return self.sums / self.count

    def emd(self, other: LabStats) -> float:
        """Earth mover's distance to ``other``, per channel in Lab units, averaged over L, a, b."""
        return float(np.mean([wasserstein_of(mine, self.count, theirs, other.count, LAB_STEP)
                              for mine, theirs in zip(self.hists, other.hists, strict=True)]))


class LabAccumulator:
    """Lab statistics of prediction and reference, in tissue and in background."""

    def __init__(self) -> None:
        self.stats: dict[str, tuple[LabStats, LabStats]] = {}

    def add(self, region: Region) -> None:
        regions = colour_regions(region)
        sample = region.sample
        if not regions or sample.reference is None:
            return
        norm = sample.output_normalisation
        pred = srgb_to_lab(to_srgb8(core_rows(sample.prediction, region), norm))
        ref = srgb_to_lab(to_srgb8(core_rows(sample.reference, region), norm))
        for key in REGIONS:
            if key in regions:
                pred_mask, ref_mask = regions[key]
                mine, theirs = self.stats.setdefault(key, (LabStats(), LabStats()))
                mine.add(pred[:, pred_mask])
                theirs.add(ref[:, ref_mask])

    def result(self) -> dict[str, float]:
        metrics = {}
        for key, (pred, ref) in self.stats.items():
            if pred.count and ref.count:
                metrics[f"delta_e{key}"] = float(np.linalg.norm(pred.mean() - ref.mean()))
                metrics[f"lab_emd{key}"] = pred.emd(ref)
        return metrics


class LabColour(StreamingEvaluator):
    """Colour of an RGB prediction against the reference in CIELAB: ΔE of the mean colours
    and the Lab earth mover's distance, in tissue and in background (needs a reference)."""

    name = "lab"

    def accumulator(self) -> LabAccumulator:
        return LabAccumulator()
