"""Unpaired training data: lazily opened domains, fitted normalisation, content-biased tiles.

Images are never pre-cut: tiles are read on the fly from the (possibly huge) source files
with random position, plane, flips and 90° rotations. Tiles with too little content (by the
domain's own saliency operator) are re-drawn a few times, so empty background does not
dominate training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utom_core.domain import Domain, Normalisation, Polarity, fit_normalisation
from utom_core.errors import InputError, UtomError
from utom_core.io import list_images, open_image
from utom_core.io.base import ImageSource
from utom_core.saliency import THRESHOLD_ESTIMATORS, SaliencyOperator

CONTENT_TRIES = 8
"""Draws per tile before the most content-rich draw is taken anyway."""
MIN_CONTENT_FRACTION, MAX_CONTENT_FRACTION = 0.01, 0.99


@dataclass(frozen=True)
class Plane:
    """One 2D plane of a source: which image, which axis is cut, and where."""

    source: int
    axis: str
    """"" for 2D images, or the cut axis of a volume: "z" (XY plane), "y" (XZ), "x" (YZ)."""
    index: int
    shape: tuple[int, int]


class DomainImages:
    """All images of one domain, opened lazily and seen as 2D planes."""

    def __init__(self, paths: list[Path], domain: Domain, cut_axes: tuple[str, ...] = ("z",)):
        self.domain = domain
        self.quarter_turns = "z" in cut_axes
        """Whether planes may be turned by 90°: XY planes, yes; XZ/YZ planes keep z vertical,
        as prediction sees them, since z is the axis they differ along."""
        self.sources: list[ImageSource] = []
        self.planes: list[Plane] = []
        try:
            for path in list_images(paths):
                self.sources.append(open_image(path))
                src = self.sources[-1]
                if src.info.channels != domain.channels:
                    raise InputError(src.path, f"has {src.info.channels} channel(s), the "
                                     f"{domain.name} domain expects {domain.channels}")
                check_planes(src, cut_axes, domain.name)
                self.planes += _planes_of(len(self.sources) - 1, src.info.shape[1:], cut_axes)
        except BaseException:
            self.close()
            raise
        self._weights = np.array([p.shape[0] * p.shape[1] for p in self.planes], dtype=np.float64)
        self._weights /= self._weights.sum()

    def close(self) -> None:
        for src in self.sources:
            src.close()

    def read(self, plane: Plane, y: int, x: int, size: int) -> np.ndarray:
        """A (C, size, size) raw window of a plane at (y, x), reflection-padded past its edges."""
        h, w = plane.shape
        ys, xs = slice(y, min(y + size, h)), slice(x, min(x + size, w))
        src = self.sources[plane.source]
        if plane.axis == "":
            region: tuple[slice, ...] = (ys, xs)
        else:
            cut = slice(plane.index, plane.index + 1)
            region = {"z": (cut, ys, xs), "y": (ys, cut, xs), "x": (ys, xs, cut)}[plane.axis]
        window = np.asarray(src.read(region)).reshape(self.domain.channels, ys.stop - ys.start,
                                                      xs.stop - xs.start)
        pad = ((0, 0), (0, size - window.shape[1]), (0, size - window.shape[2]))
        if pad[1][1] or pad[2][1]:
            window = np.pad(window, pad, mode="symmetric")
        return window

    def random_position(self, rng: np.random.Generator, size: int) -> tuple[int, int, int]:
        """Index of a plane (chosen in proportion to its area) and a window corner in it."""
        index = int(rng.choice(len(self.planes), p=self._weights))
        plane = self.planes[index]
        y = int(rng.integers(0, max(1, plane.shape[0] - size + 1)))
        x = int(rng.integers(0, max(1, plane.shape[1] - size + 1)))
        return index, y, x

    def random_window(self, rng: np.random.Generator, size: int) -> np.ndarray:
        index, y, x = self.random_position(rng, size)
        return self.read(self.planes[index], y, x, size)

    def sample_pixels(self, rng: np.random.Generator, count: int, window: int = 128) -> np.ndarray:
        """(C, ~count) raw pixels drawn from random windows across all images."""
        pixels, total = [], 0
        while total < count:
            patch = self.random_window(rng, window).reshape(self.domain.channels, -1)
            pixels.append(patch)
            total += patch.shape[1]
        return np.concatenate(pixels, axis=1)[:, :count]


def check_planes(source: ImageSource, cut_axes: tuple[str, ...], domain: str) -> None:
    """XZ/YZ planes need a volume: refuse 2D images, and stacks whose planes are not one z
    axis (e.g. time × z), where a "z" column would run across time points."""
    if "z" in cut_axes:
        return  # XY planes: any stack of planes (z, time, positions) will do
    if len(source.info.shape) != 4:
        raise InputError(source.path, f"is a 2D image; the {domain} domain is read as XZ/YZ "
                                      "planes of volumes (ZYX)")
    stacked = getattr(source, "stacked_axes", "Z")
    if len(stacked) > 1:
        raise InputError(source.path, f"stacks axes {stacked} into one z axis; the {domain} "
                                      "domain needs volumes with a single z axis")


def _planes_of(source: int, spatial: tuple[int, ...], cut_axes: tuple[str, ...]) -> list[Plane]:
    if len(spatial) == 2:
        return [Plane(source, "", 0, (spatial[0], spatial[1]))]
    z, y, x = spatial
    planes: list[Plane] = []
    if "z" in cut_axes:
        planes += [Plane(source, "z", i, (y, x)) for i in range(z)]
    if "y" in cut_axes:
        planes += [Plane(source, "y", i, (z, x)) for i in range(y)]
    if "x" in cut_axes:
        planes += [Plane(source, "x", i, (z, y)) for i in range(x)]
    return planes


def estimate_threshold(samples: np.ndarray, method: str) -> float:
    """A raw threshold on the channel mean of sampled pixels."""
    return THRESHOLD_ESTIMATORS[method](samples.mean(axis=0))


def content_fraction(samples: np.ndarray, threshold: float, background: Polarity) -> float:
    """Fraction of sampled pixels whose channel mean counts as content at ``threshold``."""
    mean = samples.mean(axis=0)
    content = mean < threshold if background is Polarity.bright else mean > threshold
    return float(content.mean())


def check_threshold(samples: np.ndarray, threshold: float, domain: Domain, where: str) -> float:
    """Refuse a threshold that makes (almost) everything content or background."""
    fraction = content_fraction(samples, threshold, domain.background)
    if not MIN_CONTENT_FRACTION <= fraction <= MAX_CONTENT_FRACTION:
        raise UtomError(
            f"{where}: threshold {threshold:g} marks {fraction:.1%} of sampled pixels as content "
            f"(allowed {MIN_CONTENT_FRACTION:.0%}–{MAX_CONTENT_FRACTION:.0%}); check it with "
            "`utom threshold` or pass another value"
        )
    return fraction


def random_orientation(rng: np.random.Generator, *windows: np.ndarray,
                       quarter_turns: bool = True) -> list[np.ndarray]:
    """The same random rotation and horizontal flip of every (C, H, W) window (aligned
    windows of a pair stay aligned): by 0–3 quarter turns, or only 0° or 180° so that the
    vertical axis stays vertical."""
    turns = int(rng.integers(4)) if quarter_turns else 2 * int(rng.integers(2))
    flip = bool(rng.integers(2))
    turned = [np.rot90(w, k=turns, axes=(1, 2)) for w in windows]
    return [w[:, :, ::-1] for w in turned] if flip else turned


class TileSampler:
    """Draws normalised, augmented, content-biased training tiles of one domain."""

    def __init__(
        self,
        images: DomainImages,
        normalisation: Normalisation,
        saliency: SaliencyOperator,
        tile: int,
        min_content: float,
        augment: bool,
    ) -> None:
        self.images, self.normalisation, self.saliency = images, normalisation, saliency
        self.tile, self.min_content, self.augment = tile, min_content, augment

    def tile_batch(self, rng: np.random.Generator, batch: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._one(rng) for _ in range(batch)]))

    def _one(self, rng: np.random.Generator) -> np.ndarray:
        best, best_content = None, -1.0
        for _ in range(CONTENT_TRIES):
            unit = self.normalisation.apply(self.images.random_window(rng, self.tile))
            content = float(self.saliency(torch.from_numpy(unit[None])).mean())
            if content > best_content:
                best, best_content = unit, content
            if content >= self.min_content:
                break
        assert best is not None
        if self.augment:
            (best,) = random_orientation(rng, best, quarter_turns=self.images.quarter_turns)
        return np.ascontiguousarray(best, dtype=np.float32)


def domain_samples(
    images: DomainImages, rng: np.random.Generator, count: int, where: str
) -> np.ndarray:
    """A (C, N) sample of a domain's raw pixels from all its images, checked to be finite."""
    samples = images.sample_pixels(rng, count)
    if not np.isfinite(samples).all():
        raise UtomError(f"{where}: images contain NaN or infinite values")
    return samples


def fit_domain(
    samples: np.ndarray, domain: Domain, setting: float | str, method: str, where: str,
    range_samples: np.ndarray | None = None,
) -> tuple[Normalisation, float]:
    """Fit a domain's normalisation and resolve its threshold (raw units), checked for sanity.

    ``range_samples`` (both domains' pixels) gives a range, and an estimated threshold, shared
    with the other domain: in the same units one boundary between content and background
    holds for both, whereas thresholds estimated per domain differ with each training set's
    share of bright structures, and L_sc then pushes every pixel between them across.
    """
    fit_on = samples if range_samples is None else range_samples
    try:
        normalisation = fit_normalisation(fit_on, domain)
    except ValueError as err:
        raise UtomError(f"{where}: {err}") from None
    if setting == "auto" or (setting == "task" and domain.threshold is None):
        threshold = estimate_threshold(fit_on, method)
    elif setting == "task":
        threshold = float(domain.threshold)  # type: ignore[arg-type]
    else:
        threshold = float(setting)
    check_threshold(samples, threshold, domain, where)
    return normalisation, threshold
