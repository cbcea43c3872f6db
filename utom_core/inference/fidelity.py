"""The fidelity map: per pixel in [0, 1], where a prediction should not be trusted (1: least).

Two signals a trained model gives at no extra forward pass, combined with their maximum, so a
pixel is flagged when either flags it and the map reads in the units of its terms:

- **views disagree**: the standard deviation of the views' predictions (``--views``) per
  pixel, averaged over channels, in the output's normalised units ([-1, 1]), divided by
  ``SPREAD_FULL`` (a quarter of the output range) and clipped to 1. Where the views agree
  the model is consistent; with one view this term is 0.
- **content masks disagree**: |T_source(x) − T_target(G(x))|, the two content maps the saliency
  constraint L_sc compares during training, with the run's thresholds, normalisations and
  smoothing. Content appearing or vanishing is what the constraint exists to prevent.

Computed tile by tile with the prediction (the content maps' smoothing is per tile, so within
3σ of a tile's edge it is approximate). The cycle residual |F(G(x)) − x| is not a term: it
needs the reverse generator, a second forward pass per view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utom_core.io import FormatTable, image_stem, open_image
from utom_core.saliency import SaliencyOperator
from utom_core.trained import TrainedModel

SPREAD_FULL = 0.5
"""Views' standard deviation (normalised units: a quarter of the output range) that scores 1.
Measured on quick-budget runs: stain-he's views spread 0.10 (median), 0.26 (90th percentile)
and 0.36 (99th) in tissue, denoise's 0.003–0.01 (docs/results/views.md)."""
LEVEL = 0.5
"""Fidelity above which a pixel is counted as doubtful (``utom run``'s metrics.json)."""
SUFFIX = ".fidelity"
"""Inserted before the image suffix: ``a.tif`` → ``a.fidelity.tif``."""


@dataclass(frozen=True)
class FidelityTerms:
    """The content maps of both domains, as the run's saliency constraint computes them."""

    source: SaliencyOperator
    target: SaliencyOperator

    @classmethod
    def of(cls, model: TrainedModel) -> FidelityTerms:
        return cls(model.source.saliency(model.source_norm, model.source_threshold),
                   model.target.saliency(model.target_norm, model.target_threshold))

    def __call__(self, x: torch.Tensor, mean: torch.Tensor, square_mean: torch.Tensor
                 ) -> torch.Tensor:
        """(N, 1, H, W) fidelity of inputs ``x``, from the views' mean prediction and mean
        square (float64, so that the variance of equal views is exactly 0)."""
        spread = (square_mean - mean**2).clamp(min=0).sqrt().mean(dim=1, keepdim=True)
        views = (spread / SPREAD_FULL).clamp(max=1)
        masks = (self.source(x.float()) - self.target(mean.float())).abs()
        return torch.maximum(views, masks.double())


def fidelity_path(output: Path, formats: FormatTable | None = None) -> Path:
    """The fidelity map's file beside ``output``, in the same format (a PNG's as TIFF: PNG
    holds no float32)."""
    stem = image_stem(output, formats=formats)
    suffix = output.name[len(stem):]
    return output.with_name(stem + SUFFIX + (".tif" if suffix.lower() == ".png" else suffix))


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
