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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from utom_core.device import autocast
from utom_core.domain import Normalisation
from utom_core.errors import InputError
from utom_core.inference.tiling import Stitch, Stitcher, TileGrid, pad_to, padded_length
from utom_core.inference.view_statistics import (
    Statistics,
    instance_norms,
    statistics_per_view,
    use_statistics,
)
from utom_core.inference.views import dihedral
from utom_core.io.base import ImageSource
from utom_core.networks.base import Generator

Reader = Callable[[slice, slice], np.ndarray]
"""Raw pixels (C, rows, cols) of one 2D plane."""
Writer = Callable[[slice, slice, np.ndarray], None]
"""Receives (rows, columns, (C, rows, columns)) of one plane once final, in [-1, 1]."""
Progress = Callable[[int, int, int], None]
"""(tiles just done, total tiles, output pixels just done): after every batch of tiles, and
after every tile row written (0 tiles, its pixels)."""
Fidelity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(inputs, the views' mean prediction, their mean square) → (N, 1, H, W) fidelity map
(``inference.fidelity``)."""


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
    views: int = 1
    """Flips and rotations each tile is predicted under, undone and averaged (1, 2, 4, 8:
    ``inference.views``)."""
    axial: bool = False
    """The planes are XZ/YZ: only views that keep the axial (row) direction (8 become 4)."""
    bf16: bool = False
    """Run the generator under bf16 autocast (only where the device computes bf16 natively:
    the caller checks ``device.native_bf16``); norms and the output stay fp32."""


class TileRunner:
    """Runs batches of normalised tiles through the generator on its device."""

    def __init__(self, generator: Generator, options: TileOptions,
                 fidelity: Fidelity | None = None) -> None:
        self.generator, self.options, self.fidelity = generator, options, fidelity
        self.views = dihedral(options.views, options.axial)
        self.norms = instance_norms(generator)
        self.frozen: list[Statistics] | None = None
        """Each view's frozen norm statistics, while a tiled plane is predicted."""
        parameter = next(generator.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        if options.channels_last:
            generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks it

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return self._layout(torch.from_numpy(np.ascontiguousarray(array)).to(self.device))

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def __call__(self, tiles: list[np.ndarray]) -> np.ndarray:
        """Predictions (N, C_out, th, tw) of one batch of normalised tiles (C, th, tw): the
        mean over the views, one view at a time (memory of one forward pass), summed in
        float64 so that 2, 4 or 8 equal predictions average to exactly themselves. With
        ``fidelity``, its map is one more channel."""
        with torch.inference_mode():
            x = self.tensor(np.stack(tiles))
            total = squares = torch.zeros((), dtype=torch.float64, device=self.device)
            for i, view in enumerate(self.views):
                if self.frozen is not None:
                    use_statistics(self.norms, self.frozen[i])
                with autocast(self.device, self.options.bf16):
                    y = self.generator(self._layout(view.apply(x)))
                y = view.undo(y).double()
                total = total + y
                squares = squares + y**2 if self.fidelity is not None else squares
            mean = total / len(self.views)
            if self.fidelity is not None:
                mean = torch.cat([mean, self.fidelity(x, mean, squares / len(self.views))], 1)
            return mean.float().cpu().numpy()


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
                 progress: Progress | None = None, fidelity: Fidelity | None = None) -> None:
        self.generator, self.source_norm, self.options = generator, source_norm, options
        self.runner = TileRunner(generator, options, fidelity)
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
        return self._per_view(
            self.runner.tensor(self.source_norm.apply(np.stack(crops), channel_axis=1)))

    @contextlib.contextmanager
    def _per_view(self, reference: torch.Tensor) -> Iterator[None]:
        """Each view's statistics of ``reference``, held by the runner for the plane's tiles
        (and recorded from it for the workers of a cluster: ``blocks``)."""
        with statistics_per_view(self.generator, reference, self.runner.views,
                                 self.options.bf16) as frozen:
            self.runner.frozen = frozen
            try:
                yield
            finally:
                self.runner.frozen = None

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

    def __call__(self, read: Reader, shape: tuple[int, int], write: Writer,
                 write_fidelity: Writer | None = None) -> None:
        """Predict one plane; with a ``fidelity`` map, its rows go to ``write_fidelity``."""
        grid = self.grid(shape)
        extra = self.runner.fidelity is not None
        stitcher = Stitcher(grid, self.generator.out_channels + extra)
        with self.statistics(read, grid):
            for row in range(len(grid.rows)):
                for first in range(0, len(grid.cols), self.options.batch):
                    batch = self.predict_batch(read, grid, row, first)
                    for col, tile in enumerate(batch, start=first):
                        stitcher.add(col, tile)
                    self.progress(len(batch), self.total, 0)  # per batch: a cancel is heard
                finished = stitcher.end_row()
                if finished is not None:
                    rows, data = finished
                    self._write(write, rows, data[:-1] if extra else data)
                    if write_fidelity is not None:
                        self._write(write_fidelity, rows, data[-1:])
                    self.progress(0, self.total, finished[1].shape[1] * grid.shape[1])

    def _write(self, write: Writer, rows: slice, data: np.ndarray) -> None:
        """Hand finished rows on in blocks one tile wide (bounded temporaries, aligned chunks)."""
        step = self.options.tile
        for x0 in range(0, data.shape[2], step):
            write(rows, slice(x0, min(x0 + step, data.shape[2])), data[:, :, x0:x0 + step])
