"""Saliency operators: the content map T(x) that the UTOM constraint keeps unchanged.

Content maps to 1 and background to 0 in every domain. A dark-background domain
(fluorescence) uses ``sigmoid(slope (x - t))``; a bright-background domain (bright-field
H&E) uses the inverted ``1 - sigmoid(slope (x - t))``. ``x`` is the channel mean of the
image normalised to [-1, 1] (weighted by each channel's raw range where channels are
normalised separately, so that ``t`` is a threshold on the raw channel mean), ``t`` the
threshold on that same scale. Maps are computed in fp32 even under bf16 autocast: with a
slope of 100 a bf16 mean moves the mask edge in steps of several percent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SLOPE = 100.0


class SaliencyOperator(ABC):
    """Maps a normalised image batch (N, C, H, W) to a content map (N, 1, H, W) in [0, 1]."""

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class SigmoidSaliency(SaliencyOperator):
    """The paper's operator: a steep sigmoid around a threshold, inverted for bright backgrounds.

    ``smooth_sigma`` (pixels) blurs the channel mean before thresholding: on noisy domains the
    raw map is speckled and the constraint cannot be met consistently. ``weights`` (summing to
    1; None: the plain mean) weight the channel mean, see ``Normalisation.channel_weights``.
    """

    def __init__(
        self,
        threshold: float,
        slope: float = DEFAULT_SLOPE,
        inverted: bool = False,
        smooth_sigma: float = 0.0,
        weights: tuple[float, ...] | None = None,
    ) -> None:
        self.threshold = float(threshold)
        self.slope = float(slope)
        self.inverted = bool(inverted)
        self.smooth_sigma = float(smooth_sigma)
        self.weights = None if weights is None else tuple(float(w) for w in weights)

    def __repr__(self) -> str:
        return (
            f"SigmoidSaliency(threshold={self.threshold:.4f}, slope={self.slope}, "
            f"inverted={self.inverted}, smooth_sigma={self.smooth_sigma}, weights={self.weights})"
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            mean = self._channel_mean(x.float())
            if self.smooth_sigma > 0:
                mean = gaussian_blur(mean, self.smooth_sigma)
            content = torch.sigmoid(self.slope * (mean - self.threshold))
            return 1.0 - content if self.inverted else content

    def _channel_mean(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            return x.mean(dim=1, keepdim=True)
        weights = torch.tensor(self.weights, dtype=x.dtype, device=x.device)
        return (x * weights.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (N, 1, H, W) batch with reflection at the borders."""
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    pad_h = min(radius, x.shape[-2] - 1)
    pad_w = min(radius, x.shape[-1] - 1)
    if pad_h < radius or pad_w < radius:  # tiny images: reflection needs pad < size
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def otsu_threshold(values: np.ndarray, bins: int = 1024) -> float:
    """Otsu's threshold of a sample of intensities (any numeric dtype)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    sum0 = np.cumsum(hist * centers)
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (sum0[-1] - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    # well-separated populations give a plateau of maxima across the empty gap: take its middle
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((centers[best[0]] + centers[best[-1]]) / 2)


def midpoint_threshold(values: np.ndarray, iterations: int = 100) -> float:
    """The paper's rule, automated: the average of a background and a foreground mean.

    The two regions are found by iterating t = (mean(x < t) + mean(x >= t)) / 2 from Otsu's
    threshold until it settles (Ridler-Calvard), so no manual region picking is needed.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    t = otsu_threshold(values)
    for _ in range(iterations):
        low, high = values[values < t], values[values >= t]
        if low.size == 0 or high.size == 0:
            break
        new_t = (low.mean() + high.mean()) / 2
        if abs(new_t - t) < 1e-9 * max(1.0, abs(t)):
            break
        t = new_t
    return float(t)


def triangle_threshold(values: np.ndarray, bins: int = 1024) -> float:
    """Zack's triangle threshold for content much rarer than background (sparse fluorescence).

    A line joins the histogram's peak (the background) to its far end on the bright side;
    the threshold is the bin edge farthest below that line, where the background's tail
    gives way to the flat run of content values. Otsu and the midpoint split two populations
    of comparable size and put a sparse image's threshold far inside its few bright objects.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    peak, end = int(np.argmax(hist)), int(np.flatnonzero(hist)[-1])
    if end <= peak:
        return float(edges[peak + 1])
    x = np.arange(peak, end + 1, dtype=np.float64)
    rise, run = float(hist[end] - hist[peak]), float(end - peak)
    below = (rise * (x - peak) - run * (hist[peak:end + 1] - hist[peak])) / math.hypot(rise, run)
    return float(edges[peak + int(np.argmax(below)) + 1])


THRESHOLD_ESTIMATORS = {"otsu": otsu_threshold, "midpoint": midpoint_threshold,
                        "triangle": triangle_threshold}
