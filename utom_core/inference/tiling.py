"""Overlapping tiles over an image of any size, and streamed stitching of their predictions.

The paper's stitching: tiles overlap by 25%; each tile gives up half of every overlap it shares
with a neighbour (its *inner* borders) and keeps image borders, so every output pixel comes from
exactly one tile, far from that tile's edge. ``blend`` instead feathers the middle half of each
overlap with linear weights that sum to one (the outer quarters, nearest a tile's edge, are
left out as in ``crop``). Both are the same computation — a weighted sum whose weights are separable
per axis — so one streaming stitcher serves both.

Tile starts are multiples of the generator's ``size_multiple`` (so strided layers see the same
pixel grid in every tile) and are spread evenly to fit the image: the stride is shortened, never
the tile, and the last tile ends exactly at the (padded) border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Stitch(StrEnum):
    """How overlapping tile predictions are combined."""

    crop = "crop"
    blend = "blend"


@dataclass(frozen=True)
class Span:
    """One tile's extent along one axis: ``start``…``start + size`` in padded coordinates."""

    start: int
    size: int

    @property
    def stop(self) -> int:
        return self.start + self.size


def padded_length(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple (at least two: networks need two cells or more)."""
    return max(math.ceil(length / multiple), 2) * multiple


def fit_spans(length: int, tile: int, overlap: float, multiple: int) -> list[Span]:
    """Fewest tiles of at most ``tile`` pixels covering ``length`` (padded up to a multiple).

    Neighbours share at least ``overlap``·tile pixels. The tile count is what full-size tiles
    need; then the tiles shrink until they just cover the image, which wastes less computation
    than shortening the stride (e.g. 1000 px, tile 512, 25%: 3 tiles of 420, not of 512).
    """
    padded = padded_length(length, multiple)
    tile = min(max(tile // multiple, 2) * multiple, padded)
    if tile == padded:
        return [Span(0, tile)]
    shared = overlap * tile
    count = math.ceil((padded - shared) / (tile - shared))
    size = math.ceil((padded + (count - 1) * shared) / count / multiple) * multiple
    while True:  # rounding starts to multiples may need a slightly larger tile
        steps = (padded - size) // multiple
        if size >= tile or size - math.ceil(steps / (count - 1)) * multiple >= shared:
            break
        size += multiple
    size = min(size, tile)
    steps = (padded - size) // multiple
    count = min(count, steps + 1)  # more tiles than aligned starts would only repeat tiles
    return [Span(round(i * steps / (count - 1)) * multiple, size) for i in range(count)]


def _axis_weights(spans: Sequence[Span], stitch: Stitch) -> list[np.ndarray]:
    """Per-tile 1D weights over its span; at every pixel they sum to one."""
    raw = []
    for i, span in enumerate(spans):
        local = np.arange(span.size, dtype=np.float64) + span.start
        if stitch is Stitch.crop:
            lo = (spans[i - 1].stop + span.start) // 2 if i > 0 else -math.inf
            hi = (span.stop + spans[i + 1].start) // 2 if i + 1 < len(spans) else math.inf
            weight = ((local >= lo) & (local < hi)).astype(np.float64)
        else:
            weight = np.ones(span.size)
            before = spans[i - 1].stop - span.start if i > 0 else 0
            after = span.stop - spans[i + 1].start if i + 1 < len(spans) else 0
            if before > 0:  # ramp up across the middle half of the overlap with the previous tile
                weight = np.minimum(weight, (local - span.start + 0.5 - before / 4) / (before / 2))
            if after > 0:
                weight = np.minimum(weight, (span.stop - local - 0.5 - after / 4) / (after / 2))
            weight = np.clip(weight, 0.0, 1.0)
        raw.append(weight)
    total = np.zeros(spans[-1].stop)
    for span, weight in zip(spans, raw, strict=True):
        total[span.start:span.stop] += weight
    return [(w / total[s.start:s.stop]).astype(np.float32) for s, w in zip(spans, raw, strict=True)]


class TileGrid:
    """Tiles of ``tile`` pixels over an image of ``shape_yx``, with their stitching weights."""

    def __init__(self, shape_yx: tuple[int, int], tile: int, overlap: float = 0.25,
                 multiple: int = 1, stitch: Stitch | str = Stitch.crop) -> None:
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        self.shape = (int(shape_yx[0]), int(shape_yx[1]))
        self.stitch = Stitch(stitch)
        self.rows = fit_spans(self.shape[0], tile, overlap, multiple)
        self.cols = fit_spans(self.shape[1], tile, overlap, multiple)
        self.row_weights = _axis_weights(self.rows, self.stitch)
        self.col_weights = _axis_weights(self.cols, self.stitch)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """Image size after reflection padding to whole tiles (the last tiles' ends)."""
        return self.rows[-1].stop, self.cols[-1].stop

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.rows[0].size, self.cols[0].size

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weight(self, row: int, col: int) -> np.ndarray:
        """Stitching weights (th, tw) of tile (``row``, ``col``)."""
        return self.row_weights[row][:, None] * self.col_weights[col][None]

    def computed_pixels(self) -> int:
        """Pixels the network processes: tiles times tile area (≥ image area)."""
        return len(self) * self.tile_shape[0] * self.tile_shape[1]


def pad_to(band: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad the last two axes of ``band`` at their far ends up to ``height`` × ``width``."""
    pad = [(0, 0)] * (band.ndim - 2) + [(0, height - band.shape[-2]), (0, width - band.shape[-1])]
    return np.pad(band, pad, mode="reflect") if any(p[1] for p in pad) else band


class Stitcher:
    """Accumulates tiles row by row and releases image rows as soon as they are final.

    Holds one tile row of output (channels × tile height × padded width), never the image.
    """

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.grid = grid
        self.acc = np.zeros((channels, grid.tile_shape[0], grid.padded_shape[1]), np.float32)
        self.top = 0
        """Image row held in the accumulator's first row."""
        self.row = 0
        """Tile row being filled."""
        self._released = 0
        """Rows handed out by ``end_row`` and not yet dropped from the accumulator."""

    def _drop_released(self) -> None:
        """Move the rows later tiles still reach to the top (in place: no second buffer)."""
        count, keep = self._released, self.acc.shape[1] - self._released
        self.acc[:, :keep] = self.acc[:, count:]
        self.acc[:, keep:] = 0.0
        self._released = 0

    def add(self, col: int, tile: np.ndarray) -> None:
        """Add the prediction (C, th, tw) of tile ``col`` of the current tile row."""
        if self._released:
            self._drop_released()
        span_y, span_x = self.grid.rows[self.row], self.grid.cols[col]
        offset = span_y.start - self.top
        self.acc[:, offset:offset + span_y.size, span_x.start:span_x.stop] += (
            tile * self.grid.weight(self.row, col))

    def end_row(self) -> tuple[slice, np.ndarray] | None:
        """Close the current tile row; return the image rows no later tile can change.

        Returned as (rows, (C, rows, image width)), or None when no row became final. The array
        is a view into the accumulator, valid until the next ``add`` (no row is ever copied).
        """
        if self._released:
            self._drop_released()
        grid, r = self.grid, self.row
        self.row += 1
        final = grid.rows[r + 1].start if r + 1 < len(grid.rows) else grid.rows[r].stop
        final = min(final, grid.shape[0])
        if final <= self.top:
            return None
        count, rows = final - self.top, slice(self.top, final)
        self._released, self.top = count, final
        return rows, self.acc[:, :count, :grid.shape[1]]
