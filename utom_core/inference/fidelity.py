"""The fidelity map: per pixel in [0, 1], where a prediction should not be trusted (1: least).

Up to four terms, each in [0, 1]; the map is their **mean**, smoothed with a Gaussian of
``SMOOTH`` pixels. Both choices were measured (docs/results/fidelity.md): the worst pixels of a
prediction come in clusters while every term is noisy per pixel, so smoothing raised the map's
ROC AUC for them from 0.70 to 0.80 (mean of 12 cases), and the mean ranked them better than
the maximum once smoothed. A pixel near 1 is doubted by every term; near 0.5, strongly by half.

- **views disagree**: the standard deviation of the views' predictions (``--views``) per
  pixel, averaged over channels, in the output's normalised units ([-1, 1]), divided by
  ``SPREAD_FULL`` (a quarter of the output range) and clipped to 1. No extra forward pass.
  With one view their spread is exactly 0: the term is left out of the mean.
- **content masks disagree**: |T_source(x) − T_target(G(x))|, the two content maps the saliency
  constraint L_sc compares during training, with the run's thresholds, normalisations and
  smoothing. Content appearing or vanishing is what the constraint exists to prevent. No
  extra forward pass.
- **cycle residual** (runs with a reverse generator F: utom, cyclegan): |F(G(x)) − x| per
  pixel, averaged over channels, in the input's normalised units, divided by ``CYCLE_FULL``
  and clipped to 1: what the prediction lost of its input. One forward pass of F per tile,
  on the views' mean prediction (per view it found the worst pixels somewhat better, at one
  pass of F per view: docs/results/fidelity.md).
- **gradient residual** (the same runs, from the same pass of F): |∇F(G(x)) − ∇x|, the
  Gaussian (σ ``GRADIENT_SIGMA``) gradient magnitude of the residual, averaged over channels,
  divided by ``GRADIENT_FULL`` and clipped to 1: lost or invented edges rather than
  intensity, the best single term measured.

Computed tile by tile with the prediction (the content maps' smoothing, F's instance norms and
the map's smoothing are per tile, so near an inner tile edge they are approximate; the
smoothing reaches 3σ = 6 px, well inside the tiles' overlap).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utom_core.console import console
from utom_core.errors import UtomError
from utom_core.io import FormatTable, image_stem, open_image, writer_for
from utom_core.io.atomic import remove
from utom_core.io.base import ImageInfo
from utom_core.io.replaceable import check_replaceable
from utom_core.networks.base import Generator
from utom_core.saliency import SaliencyOperator, gaussian_blur
from utom_core.task import Slicing
from utom_core.trained import TrainedModel

SPREAD_FULL = 0.5
"""Views' standard deviation (normalised units: a quarter of the output range) that scores 1.
Measured on quick-budget runs: stain-he's views spread 0.10 (median), 0.26 (90th percentile)
and 0.36 (99th) in tissue, denoise's 0.003–0.01 (docs/results/views.md)."""
CYCLE_FULL = 0.5
"""Cycle residual (the input's normalised units: a quarter of its range) that scores 1.
Measured on bench-budget runs: median pixel 0.07–0.12, 90th percentile 0.21–0.40, 0.2–6 % of
pixels at or above it (denoise, label, stain-he, a content-mismatch case; sr's 99th
percentile 0.025: docs/results/fidelity.md)."""
GRADIENT_FULL = 0.25
"""Gradient residual (the input's normalised units per pixel) that scores 1. Measured on the
bench-budget runs: median pixel 0.03–0.05, 90th percentile 0.08–0.14, 99th 0.15–0.28 (sr's
99th 0.008: docs/results/fidelity.md)."""
GRADIENT_SIGMA = 1.0
"""Gaussian σ (px) of the gradient taken of the cycle residual."""
SMOOTH = 2.0
"""Gaussian σ (px) the map is smoothed with: 1–2 measured best, 4 worse than 1
(docs/results/fidelity.md). Reaches 3σ = 6 px: inside the tiles' overlap."""
LEVEL = 0.25
"""Fidelity above which a pixel is counted as doubtful (``utom run``'s metrics.json): on the
bench-budget runs 0–4 % of the pixels of working runs (denoise, sr), 9–22 % of the
content-mismatch and stain-he runs, 43–50 % of a failed run (label): docs/results/fidelity.md."""
SUFFIX = ".fidelity"
"""Inserted before the image suffix: ``a.tif`` → ``a.fidelity.tif``."""


def _per_channel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``gaussian_blur`` of every channel of an (N, C, H, W) batch."""
    n, c, h, w = x.shape
    return gaussian_blur(x.reshape(n * c, 1, h, w), sigma).reshape(n, c, h, w)


def cycle_terms(reverse: Generator, x: torch.Tensor, prediction: torch.Tensor
                ) -> dict[str, torch.Tensor]:
    """The cycle residual |F(G(x)) − x| / ``CYCLE_FULL`` ("cycle") and its gradient magnitude
    / ``GRADIENT_FULL`` ("gradient"), (N, 1, H, W) float64 clipped to 1, of inputs ``x`` and
    their prediction G(x), with the reverse generator F (one pass)."""
    residual = (reverse(prediction.to(x.dtype)) - x).double()
    dy, dx = torch.gradient(_per_channel(residual, GRADIENT_SIGMA), dim=(-2, -1))
    gradient = (dy**2 + dx**2).sqrt().mean(dim=1, keepdim=True)
    return {"cycle": (residual.abs().mean(dim=1, keepdim=True) / CYCLE_FULL).clamp(max=1),
            "gradient": (gradient / GRADIENT_FULL).clamp(max=1)}


@dataclass(frozen=True)
class FidelityTerms:
    """The content maps of both domains, as the run's saliency constraint computes them, and
    the reverse generator where the run has one."""

    source: SaliencyOperator
    target: SaliencyOperator
    reverse: Generator | None = None

    @classmethod
    def of(cls, model: TrainedModel) -> FidelityTerms:
        return cls(model.source.saliency(model.source_norm, model.source_threshold),
                   model.target.saliency(model.target_norm, model.target_threshold),
                   model.reverse)

    def terms(self, x: torch.Tensor, mean: torch.Tensor, square_mean: torch.Tensor
              ) -> dict[str, torch.Tensor]:
        """Each term by name ("views", "masks", "cycle", "gradient"), (N, 1, H, W) float64 in
        [0, 1], unsmoothed, of inputs ``x``, from the views' mean prediction and mean square
        (float64, so that the variance of equal views is exactly 0)."""
        spread = (square_mean - mean**2).clamp(min=0).sqrt().mean(dim=1, keepdim=True)
        found = {"views": (spread / SPREAD_FULL).clamp(max=1),
                 "masks": (self.source(x.float()) - self.target(mean.float())).abs().double()}
        if self.reverse is not None:
            found.update(cycle_terms(self.reverse, x, mean))
        return found

    def __call__(self, x: torch.Tensor, mean: torch.Tensor, square_mean: torch.Tensor
                 ) -> torch.Tensor:
        """(N, 1, H, W) fidelity: the mean of the terms (the views' only where they differ
        anywhere in the batch: one view cannot), smoothed by ``SMOOTH``."""
        found = self.terms(x, mean, square_mean)
        if not found["views"].any():
            del found["views"]
        return gaussian_blur(torch.stack(list(found.values())).mean(dim=0), SMOOTH)


def maps_made(slicing: Slicing) -> bool:
    """Whether fidelity maps are made for models of planes cut this way: not yet for XZ/YZ
    planes (isotropic), whose views and masks run along another axis."""
    return slicing is not Slicing.xz_yz


def fidelity_path(output: Path, formats: FormatTable | None = None) -> Path:
    """The fidelity map's file beside ``output``, in the same format (a PNG's as TIFF: PNG
    holds no float32)."""
    stem = image_stem(output, formats=formats)
    suffix = output.name[len(stem):]
    return output.with_name(stem + SUFFIX + (".tif" if suffix.lower() == ".png" else suffix))


def remove_stale_map(output: Path, keep: Collection[Path],
                     formats: FormatTable | None = None, say: bool = True) -> None:
    """After ``--overwrite`` replaced ``output`` with no map, delete the map an earlier
    prediction left beside it, which describes an image that is gone (napari would lay it over
    the new one), and with ``say`` name it on the terminal. Only where that file is certainly
    such a map: of a kind utom writes, one float32 channel of the output's shape, none of
    ``keep`` (the resolved paths of the job's inputs and outputs) and no other image's
    (``a.png``'s map is ``a.tif``'s)."""
    stale = fidelity_path(output, formats)
    stem = image_stem(output, formats=formats)
    owners = (output.with_name(stem + suffix) for suffix in (".png", ".PNG", ".tif"))
    if (not stale.exists() or stale.is_symlink() or stale.resolve() in keep
            or any(fidelity_path(p, formats) == stale and p.exists() and not p.samefile(output)
                   for p in owners)):
        return
    try:
        check_replaceable(stale, writer_for(stale, formats=formats).name)
        found, made = (_info(path, formats) for path in (stale, output))
    except (UtomError, OSError):
        return
    if found.shape != (1, *made.shape[1:]) or found.dtype != np.float32:
        return
    remove(stale)
    if say:
        console.print(f"removed {stale}: the fidelity map of the prediction it replaced",
                      soft_wrap=True)


def _info(path: Path, formats: FormatTable | None) -> ImageInfo:
    source = open_image(path, formats=formats)
    try:
        return source.info
    finally:
        source.close()


def _strips(height: int, rows: int = 256) -> Iterator[slice]:
    for start in range(0, height, rows):
        yield slice(start, min(start + rows, height))


def fraction_above(path: Path, level: float = LEVEL, formats: FormatTable | None = None
                   ) -> float:
    """Share of a fidelity map's pixels above ``level``, read in row strips."""
    source = open_image(path, formats=formats)
    try:
        shape = source.info.shape
        above = 0
        for rows in _strips(shape[-2]):
            region = (*(slice(None),) * (len(shape) - 3), rows, slice(None))
            above += int(np.count_nonzero(source.read(region) > level))
        return above / float(np.prod(shape))
    finally:
        source.close()
