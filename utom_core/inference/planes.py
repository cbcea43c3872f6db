"""Streaming prediction of images of any size: tile rows in, finished output rows out.

Memory is bounded by one row of output tiles (tile height × image width × output channels), one
batch of tiles (read together, so input memory does not grow with the width) and one forward
pass of at most ``max_pixels`` — never by the image. Volumes go plane by plane: XY planes, or
(isotropic restoration) XZ and YZ planes averaged, the XZ pass kept in a scratch OME-Zarr.

Normalisation statistics (``Norm.image``, the default): instance norm per tile gives every tile
its own brightness and contrast and leaves seams. A plane of at most ``max_pixels`` is therefore
predicted whole (exact whole-image inference, no overlap to pay for). Larger planes are tiled,
and the statistics of every InstanceNorm layer are recorded once and frozen for all tiles, from
a sample of ``max_pixels``: small full-resolution crops at the centres of a regular grid over
the plane, their statistics pooled layer by layer as if they were one image. The sample is an
approximation of whole-image statistics; at the same pixel budget it tracked whole-image
inference several times better than a strided thumbnail, whose coarser scale shifts deeper
layers' statistics (``benchmarks/seams.py`` prints both).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from utom_core.domain import Normalisation
from utom_core.errors import InputError
from utom_core.inference.tiling import Stitch, Stitcher, TileGrid, pad_to, padded_length
from utom_core.io.base import ImageSource
from utom_core.networks.base import Generator
from utom_core.networks.norm import frozen_norm_statistics

Reader = Callable[[slice, slice], np.ndarray]
"""Raw pixels (C, rows, cols) of one 2D plane."""
Writer = Callable[[slice, slice, np.ndarray], None]
"""Receives (rows, columns, (C, rows, columns)) of one plane once final, in [-1, 1]."""
Progress = Callable[[int, int, int], None]
"""(tiles just done, total tiles, output pixels just done)."""


class Norm(StrEnum):
    """Where InstanceNorm statistics come from during tiled prediction."""

    image = "image"
    """The whole plane's (predicted whole, or statistics sampled and shared by all tiles)."""
    tile = "tile"
    """Each tile's own statistics, as in the paper and the reference code."""


@dataclass(frozen=True)
class TileOptions:
    """How an image is cut, run and stitched."""

    tile: int = 512
    """Largest tile side in pixels (tiles shrink to fit the image)."""
    overlap: float = 0.25
    """Fraction of the tile shared with each neighbour (paper: 0.25)."""
    stitch: Stitch = Stitch.crop
    """crop: keep each tile's centre (paper); blend: feathered weights."""
    batch: int = 1
    """Tiles per forward pass (on CPU, 1 measured fastest; GPUs like more)."""
    norm: Norm = Norm.image
    """Normalisation statistics per tile or of the whole plane."""
    max_pixels: int | None = None
    """Largest single forward pass: planes up to this size are predicted whole (with
    ``Norm.image``); larger ones are tiled, with norm statistics from a sample of this many
    pixels. None: 4 × ``tile``²."""
    channels_last: bool = False
    """Run convolutions in channels-last memory layout (faster on some hardware)."""


class TileRunner:
    """Runs batches of normalised tiles through the generator on its device."""

    def __init__(self, generator: Generator, options: TileOptions) -> None:
        self.generator, self.options = generator, options
        parameter = next(generator.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        if options.channels_last:
            generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks it

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def __call__(self, tiles: list[np.ndarray]) -> np.ndarray:
        """Predictions (N, C_out, th, tw) of one batch of normalised tiles (C, th, tw)."""
        with torch.inference_mode():
            return self.generator(self.tensor(np.stack(tiles))).float().cpu().numpy()


def check_channels(source: ImageSource, generator: Generator) -> None:
    """InputError naming the file when its channel count is not the generator's."""
    found = source.info.channels
    if found != generator.in_channels:
        raise InputError(source.path, f"expected {generator.in_channels} channel(s), "
                                      f"found {found} (shape {source.info.shape})")


def sample_windows(shape: tuple[int, int], budget: int, side: int, multiple: int
                   ) -> list[tuple[slice, slice]]:
    """Square crops of about ``side`` pixels centred on the cells of a regular grid over a plane
    (centres, not corners: image borders are often background), as many as ``budget`` holds."""
    height, width = shape
    side = min(max(side // multiple, 2) * multiple, height, width)
    count = max(budget // side**2, 1)
    ny = min(max(round(math.sqrt(count * height / width)), 1), height // side)
    nx = min(max(count // ny, 1), width // side)
    ys = [int((i + 0.5) * height / ny) - side // 2 for i in range(ny)]
    xs = [int((i + 0.5) * width / nx) - side // 2 for i in range(nx)]
    return [(slice(y, y + side), slice(x, x + side)) for y in ys for x in xs]


class PlanePredictor:
    """Predicts 2D planes given as lazy readers, streaming finished rows to a writer."""

    def __init__(self, generator: Generator, source_norm: Normalisation, options: TileOptions,
                 progress: Progress | None = None) -> None:
        self.generator, self.source_norm, self.options = generator, source_norm, options
        self.runner = TileRunner(generator, options)
        self.progress = progress or (lambda tiles, total, pixels: None)
        self.total = 0
        self.max_pixels = options.max_pixels or 4 * options.tile**2

    def grid(self, shape: tuple[int, int]) -> TileGrid:
        """Tiles for a plane: one tile of the whole plane when it has at most ``max_pixels``."""
        o, multiple = self.options, self.generator.size_multiple
        whole = o.norm is Norm.image and shape[0] * shape[1] <= self.max_pixels
        tile = max(shape) + 2 * multiple if whole else o.tile
        return TileGrid(shape, tile, o.overlap, multiple, o.stitch)

    def plan(self, shape: tuple[int, int], planes: int = 1) -> None:
        """Announce ``planes`` more planes of ``shape`` (for the progress total)."""
        self.total += planes * len(self.grid(shape))

    def statistics(self, read: Reader, grid: TileGrid) -> contextlib.AbstractContextManager:
        """Freeze norm statistics of a sample of the plane for all its tiles (if tiled)."""
        if self.options.norm is Norm.tile or len(grid) == 1:
            return contextlib.nullcontext()
        multiple = self.generator.size_multiple
        windows = sample_windows(grid.shape, self.max_pixels, self.options.tile // 4, multiple)
        crops = [pad_to(read(rows, cols), padded_length(rows.stop - rows.start, multiple),
                        padded_length(cols.stop - cols.start, multiple))
                 for rows, cols in windows]
        reference = self.source_norm.apply(np.stack(crops), channel_axis=1)
        return frozen_norm_statistics(self.generator, self.runner.tensor(reference))

    def predict_batch(self, read: Reader, grid: TileGrid, row: int, first: int) -> np.ndarray:
        """Predictions (N, C, th, tw) of tiles ``first``… (one batch) of tile row ``row``,
        read together: input memory does not grow with the image width."""
        span, (height, width) = grid.rows[row], grid.shape
        rows = slice(span.start, min(span.stop, height))
        cols = grid.cols[first:first + self.options.batch]
        x0, x1 = cols[0].start, cols[-1].stop
        raw = pad_to(read(rows, slice(x0, min(x1, width))), span.size, x1 - x0)
        return self.runner([self.source_norm.apply(raw[:, :, c.start - x0:c.stop - x0])
                            for c in cols])

    def __call__(self, read: Reader, shape: tuple[int, int], write: Writer) -> None:
        grid = self.grid(shape)
        stitcher = Stitcher(grid, self.generator.out_channels)
        with self.statistics(read, grid):
            for row in range(len(grid.rows)):
                for first in range(0, len(grid.cols), self.options.batch):
                    for col, tile in enumerate(self.predict_batch(read, grid, row, first),
                                               start=first):
                        stitcher.add(col, tile)
                finished = stitcher.end_row()
                if finished is not None:
                    self._write(write, *finished)
                self.progress(len(grid.cols), self.total,
                              0 if finished is None else finished[1].shape[1] * grid.shape[1])

    def _write(self, write: Writer, rows: slice, data: np.ndarray) -> None:
        """Hand finished rows on in blocks one tile wide (bounded temporaries, aligned chunks)."""
        step = self.options.tile
        for x0 in range(0, data.shape[2], step):
            write(rows, slice(x0, min(x0 + step, data.shape[2])), data[:, :, x0:x0 + step])
