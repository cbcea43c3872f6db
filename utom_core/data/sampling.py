"""Training tiles: random position, plane, flips and 90° rotations, biased towards content.

Tiles with too little content (by the domain's own saliency operator) are re-drawn a few
times, so empty background does not dominate training.
"""

from __future__ import annotations

import numpy as np
import torch

from utom_core.data.images import DomainImages
from utom_core.domain import Normalisation
from utom_core.errors import UtomError
from utom_core.saliency import SaliencyOperator

CONTENT_TRIES = 8
"""Draws per tile before the most content-rich draw is taken anyway."""


def random_orientation(rng: np.random.Generator, *windows: np.ndarray,
                       quarter_turns: bool = True) -> list[np.ndarray]:
    """The same random rotation and horizontal flip of every (C, H, W) window (aligned
    windows of a pair stay aligned): by 0–3 quarter turns, or only 0° or 180° so that the
    vertical axis stays vertical."""
    turns = int(rng.integers(4)) if quarter_turns else 2 * int(rng.integers(2))
    flip = bool(rng.integers(2))
    turned = [np.rot90(w, k=turns, axes=(1, 2)) for w in windows]
    return [w[:, :, ::-1] for w in turned] if flip else turned


def check_tile_fits(images: DomainImages, tile: int) -> None:
    """Refuse a tile larger than every plane of a domain along both sides: its tiles would be
    mostly mirrored padding, and the networks' memory grows with the tile, not the image. A
    plane shorter than the tile along one side (45 z-slices, 64-px tiles) is padded as usual."""
    side = max(max(plane.shape) for plane in images.planes)
    if tile > side:
        largest = max(images.planes, key=lambda plane: max(plane.shape))
        name = images.sources[largest.source].path.name
        raise UtomError(f"tile {tile}: larger than every {images.domain.name} image (the largest "
                        f"plane is {largest.shape[0]} × {largest.shape[1]} px, {name}); use a "
                        f"tile of at most {side} px")


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
        check_tile_fits(images, tile)
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
