"""Periodic artefacts: how far an output's power spectrum peaks at the generator's strides.

A generator with two stride-2 levels can print a grid of 2- and 4-px period over everything
it outputs; averaging views moves such a grid around but does not remove it. Its signature is
a spectral peak at those periods, along either axis or the diagonal, far above the spectrum
around it, which natural images (and the real H&E) do not have: the authors' fully trained
UTOM output scores about 3, their adjacent real section about 3, a gridded output hundreds.
"""

from __future__ import annotations

import numpy as np

from utom_core.evaluation.base import Evaluator, Sample

PERIODS = {
    "x4": (0.0, 0.25), "y4": (0.25, 0.0), "diagonal4": (0.25, 0.25),
    "antidiagonal4": (0.25, -0.25), "x2": (0.0, 0.5), "y2": (0.5, 0.0),
    "diagonal2": (0.5, 0.5),
}
"""Frequencies (cycles per pixel along Y, X) of the 2- and 4-px periods a stride-2 generator
can leave."""
CROP = 1024
"""Side of the central crop that is measured (smaller images: all of it)."""
PEAK_BINS = 1.0
"""A peak is the largest power of the bins nearer than this to its frequency: the one bin a
period that divides the crop falls on, else the two to four around it."""
RING_BINS = (3.0, 8.0)
"""The near ring whose median power a peak is compared with, in bins from the peak."""
OUTER_RING = (0.03, 0.06)
"""A wider ring, in cycles per pixel from the peak and at least ``RING_BINS[0]`` bins from it
(out of the peak's own window leakage; crops too small to have one use the near ring
alone): a peak is compared with the larger of the two rings' medians, so that an output
whose lattice frequencies were notched out (``lattice_notch``) does not read its notch's
dip, 3–8 bins around the emptied peak, as a peak above it. On the real H&E sections and
the authors' predictions the score is within 8 % of the near ring's alone; the AF inputs'
own acquisition lines read up to half as high (docs/results/upsampling.md)."""
PERIODIC_LIMIT = 5.0
"""A peak ratio above this is a visible periodic artefact (the real H&E scores about 3)."""


def _wrapped(offsets: np.ndarray, size: int) -> np.ndarray:
    return np.abs((offsets + size / 2) % size - size / 2)


def periodic_peaks(image: np.ndarray) -> dict[str, float]:
    """Per period of ``PERIODS``, its spectral power over the median power of the ring around
    it (``RING_BINS``, or ``OUTER_RING`` where that is higher), on the Hann-windowed central
    ``CROP``² of ``image`` ((Y, X) or (C, Y, X): channels are
    averaged to grey first)."""
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=0)
    height, width = grey.shape
    rows, cols = min(height, CROP), min(width, CROP)
    top, left = (height - rows) // 2, (width - cols) // 2
    crop = grey[top:top + rows, left:left + cols]
    window = np.outer(np.hanning(rows), np.hanning(cols))
    power = np.abs(np.fft.fft2((crop - crop.mean()) * window)) ** 2
    bins_y, bins_x = np.arange(rows)[:, None], np.arange(cols)[None, :]
    ratios = {}
    for name, (fy, fx) in PERIODS.items():
        off_y, off_x = _wrapped(bins_y - fy * rows, rows), _wrapped(bins_x - fx * cols, cols)
        distance, cycles = np.hypot(off_y, off_x), np.hypot(off_y / rows, off_x / cols)
        ring = np.median(power[(distance >= RING_BINS[0]) & (distance <= RING_BINS[1])])
        far = (cycles >= OUTER_RING[0]) & (cycles <= OUTER_RING[1]) & (distance >= RING_BINS[0])
        outer = np.median(power[far]) if far.any() else 0.0
        ratios[name] = float(power[distance < PEAK_BINS].max() / max(ring, outer, 1e-30))
    return ratios


def periodic_artefact(image: np.ndarray) -> float:
    """The largest peak ratio of ``periodic_peaks``: at most ``PERIODIC_LIMIT`` when the
    output has no visible grid."""
    return max(periodic_peaks(image).values())


class PeriodicArtefact(Evaluator):
    """``periodic_artefact`` of a prediction (no reference needed), on its central XY plane:
    ``evaluate_prediction`` scores every prediction with it, whatever the task's evaluators."""

    name = "periodic"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        image = sample.prediction
        plane = image if image.ndim == 3 else image[:, image.shape[1] // 2]
        return {"periodic_artefact": periodic_artefact(plane)}
