"""Training tiles: random position, plane, flips and 90° rotations, biased towards content.

Tiles with too little content (by the domain's own saliency operator) are re-drawn a few
times, so empty background does not dominate training.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from utom_core.data.images import DomainImages
from utom_core.domain import Normalisation
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


class TileWarning(UserWarning):
    """A training tile larger than every image of a domain (``warn_tile_exceeds``)."""


def warn_tile_exceeds(images: DomainImages, tile: int, multiple: int) -> None:
    """Warn of a tile larger than every plane of a domain along both sides: its tiles are then
    mostly mirrored padding, at the memory and time of the tile, not of the images (a 4000-px
    tile on 1000-px images ran out of memory, with no word of why). Images smaller than a
    tile still train, as they should; a plane shorter than the tile along one side (45
    z-slices, 64-px tiles) is padded without a word. ``multiple``: the generator's size
    multiple, which the tile it names respects (the networks may still need a larger one:
    ``check_tile`` then says so)."""
    largest = max(images.planes, key=lambda plane: max(plane.shape))
    side = max(largest.shape)
    if tile <= side:
        return
    fits = side // multiple * multiple
    instead = f"; a tile of at most {fits} px fits it along its longer side" if fits else ""
    warnings.warn(f"tile {tile} is larger than every {images.domain.name} image (the largest "
                  f"plane is {largest.shape[0]} × {largest.shape[1]} px, in "
                  f"{images.sources[largest.source].path}): its tiles are mostly mirrored "
                  f"padding, at the memory and time of {tile}-px tiles{instead}", TileWarning,
                  stacklevel=2)


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
