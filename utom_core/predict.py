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
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
import zarr
from rich import progress as bar

from utom_core.console import console, progress_display
from utom_core.data import check_planes
from utom_core.domain import Normalisation
from utom_core.errors import InputError, UtomError
from utom_core.io import open_image, writer_for
from utom_core.io.base import ImageInfo, ImageSink, ImageSource
from utom_core.networks.base import Generator
from utom_core.networks.norm import frozen_norm_statistics
from utom_core.runs import Predictor
from utom_core.task import Slicing
from utom_core.tiling import Stitch, Stitcher, TileGrid, pad_to, padded_length

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
            generator.to(memory_format=torch.channels_last)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def __call__(self, tiles: list[np.ndarray]) -> np.ndarray:
        """Predictions (N, C_out, th, tw) of one batch of normalised tiles (C, th, tw)."""
        with torch.inference_mode():
            return self.generator(self.tensor(np.stack(tiles))).float().cpu().numpy()


def output_info(info: ImageInfo, channels: int, dtype: np.dtype | str) -> ImageInfo:
    """The prediction's shape, pixel type and metadata: the input's, with the target channels."""
    return ImageInfo((channels, *info.shape[1:]), np.dtype(dtype), dict(info.pixel_size),
                     info.unit)


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

    def _statistics(self, read: Reader, grid: TileGrid) -> contextlib.AbstractContextManager:
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

    def __call__(self, read: Reader, shape: tuple[int, int], write: Writer) -> None:
        grid = self.grid(shape)
        stitcher = Stitcher(grid, self.generator.out_channels)
        height, width = grid.shape
        batch = self.options.batch
        with self._statistics(read, grid):
            for row in grid.rows:
                rows = slice(row.start, min(row.stop, height))
                for first in range(0, len(grid.cols), batch):
                    cols = grid.cols[first:first + batch]
                    # one read per batch: input memory does not grow with the image width
                    x0, x1 = cols[0].start, cols[-1].stop
                    raw = pad_to(read(rows, slice(x0, min(x1, width))), row.size, x1 - x0)
                    tiles = [self.source_norm.apply(raw[:, :, c.start - x0:c.stop - x0])
                             for c in cols]
                    for col, tile in enumerate(self.runner(tiles), start=first):
                        stitcher.add(col, tile)
                finished = stitcher.end_row()
                if finished is not None:
                    self._write(write, *finished)
                self.progress(len(grid.cols), self.total,
                              0 if finished is None else finished[1].shape[1] * width)

    def _write(self, write: Writer, rows: slice, data: np.ndarray) -> None:
        """Hand finished rows on in blocks one tile wide (bounded temporaries, aligned chunks)."""
        step = self.options.tile
        for x0 in range(0, data.shape[2], step):
            write(rows, slice(x0, min(x0 + step, data.shape[2])), data[:, :, x0:x0 + step])


def predict_image(source: ImageSource, generator: Generator, source_norm: Normalisation,
                  target_norm: Normalisation, sink: ImageSink, options: TileOptions | None = None,
                  slicing: Slicing = Slicing.xy, progress: Progress | None = None) -> None:
    """Predict ``source`` into ``sink`` (not committed), streaming tile rows.

    The sink must have been created with ``output_info(source.info, generator.out_channels,
    target_norm.dtype)``; outputs are mapped back to raw units with ``target_norm``.
    """
    check_channels(source, generator)
    predictor = PlanePredictor(generator, source_norm, options or TileOptions(), progress)
    shape = source.info.shape
    if len(shape) == 3:
        predictor.plan(shape[1:])
        predictor(lambda ys, xs: source.read((ys, xs)), shape[1:],
                  lambda ys, xs, data: sink.write((ys, xs), target_norm.invert(data)))
    elif slicing is Slicing.xz_yz:
        _predict_xz_yz(source, predictor, target_norm, sink)
    else:
        _predict_xy(source, predictor, target_norm, sink)


def _predict_xy(source: ImageSource, predictor: PlanePredictor, target_norm: Normalisation,
                sink: ImageSink) -> None:
    _, depth, height, width = source.info.shape
    predictor.plan((height, width), depth)
    for z in range(depth):
        plane = slice(z, z + 1)
        predictor(lambda ys, xs, p=plane: source.read((p, ys, xs))[:, 0], (height, width),
                  lambda ys, xs, data, p=plane: sink.write((p, ys, xs),
                                                           target_norm.invert(data)[:, None]))


SLAB = 64
"""Planes per block of the XZ/YZ passes (and the scratch store's chunk width)."""


def _slabs(length: int) -> Iterator[slice]:
    for start in range(0, length, SLAB):
        yield slice(start, min(start + SLAB, length))


def _slab(source: ImageSource, predictor: PlanePredictor, axis: str, positions: slice
          ) -> np.ndarray:
    """Predictions of the XZ planes (``axis`` "y") or YZ planes ("x") at ``positions``.

    Returned in volume order: (C, Z, planes, X) for XZ, (C, Z, Y, planes) for YZ.
    """
    _, depth, height, width = source.info.shape
    shape = (depth, width if axis == "y" else height)
    planes = []
    for p in range(positions.start, positions.stop):
        at = slice(p, p + 1)
        if axis == "y":
            def read(zs: slice, cs: slice, at: slice = at) -> np.ndarray:
                return source.read((zs, at, cs))[:, :, 0]
        else:
            def read(zs: slice, cs: slice, at: slice = at) -> np.ndarray:
                return source.read((zs, cs, at))[..., 0]
        plane = np.zeros((predictor.generator.out_channels, *shape), np.float32)

        def write(rows: slice, cols: slice, data: np.ndarray, plane: np.ndarray = plane) -> None:
            plane[:, rows, cols] = data

        predictor(read, shape, write)
        planes.append(plane)
    return np.stack(planes, axis=2 if axis == "y" else 3)


def _predict_xz_yz(source: ImageSource, predictor: PlanePredictor, target_norm: Normalisation,
                   sink: ImageSink) -> None:
    """Average of predictions on XZ planes (one per y) and YZ planes (one per x).

    Pass 1 writes XZ results to a scratch zarr in slabs of y; pass 2 reads them back in slabs of
    x, adds the YZ results and writes the average. Memory: one slab, channels × Z × max(X, Y) ×
    ``SLAB`` floats.
    """
    _, depth, height, width = source.info.shape
    channels = predictor.generator.out_channels
    predictor.plan((depth, width), height)
    predictor.plan((depth, height), width)
    with tempfile.TemporaryDirectory(prefix="utom-xz-") as scratch:
        xz = zarr.create_array(str(Path(scratch) / "xz.zarr"), dtype="float32",
                               shape=(channels, depth, height, width),
                               chunks=(channels, depth, SLAB, SLAB))
        for ys in _slabs(height):
            xz[:, :, ys] = _slab(source, predictor, "y", ys)
        for xs in _slabs(width):
            average = (xz[:, :, :, xs] + _slab(source, predictor, "x", xs)) / 2
            sink.write((slice(0, depth), slice(0, height), xs), target_norm.invert(average))


def _progress(show: bool) -> bar.Progress:
    """Tiles done of total, and output megapixels per second."""
    return bar.Progress(
        bar.TextColumn("{task.description}"), bar.BarColumn(), bar.MofNCompleteColumn(),
        bar.TextColumn("tiles {task.fields[rate]}"), bar.TimeElapsedColumn(),
        bar.TimeRemainingColumn(), console=console, disable=not show)


def predict_file(image: Path, output: Path, predictor: Predictor, options: TileOptions,
                 show_progress: bool = True) -> None:
    """Predict one file into a temporary output that is moved into place only when complete."""
    source = open_image(image)
    try:
        check_channels(source, predictor.generator)
        if predictor.slicing is Slicing.xz_yz and len(source.info.shape) == 4:
            check_planes(source, ("y", "x"), predictor.source.name)
        info = output_info(source.info, predictor.generator.out_channels,
                           predictor.target_norm.dtype.value)
        output.parent.mkdir(parents=True, exist_ok=True)
        sink = writer_for(output).create(output, info, chunk=options.tile)
        try:
            with progress_display(_progress(show_progress)) as progress:
                task = progress.add_task(image.name, total=None, rate="")
                start, pixels = time.perf_counter(), 0

                def advance(tiles: int, total: int, done: int) -> None:
                    nonlocal pixels
                    pixels += done
                    rate = pixels / 1e6 / max(time.perf_counter() - start, 1e-9)
                    progress.update(task, advance=tiles, total=total, rate=f"{rate:.2f} MP/s")

                predict_image(source, predictor.generator, predictor.source_norm,
                              predictor.target_norm, sink, options, predictor.slicing, advance)
                sink.commit()  # inside: a failing commit clears the bar like any failure
        except BaseException as err:
            sink.abort()
            if isinstance(err, OSError):  # disk full, read-only folder, …
                raise UtomError(f"{err.filename or output}: cannot write ({err.strerror or err})"
                                f"; nothing was written to {output}") from None
            raise
    finally:
        source.close()
