"""Predicting a file into a file: the output-format policy, the output's metadata, the
progress bar, and a commit that makes the output appear complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from utom_core.data.images import check_planes
from utom_core.errors import DiskError
from utom_core.inference.planes import TileOptions, check_channels
from utom_core.inference.volumes import predict_image
from utom_core.io import image_stem, open_image, writer_for
from utom_core.io.base import ImageInfo, ImageSink, ImageSource
from utom_core.progress import LoopProgress
from utom_core.task import Slicing
from utom_core.trained import TrainedModel

FORMAT_SUFFIXES = {"tiff": ".tif", "zarr": ".ome.zarr", "ome-tiff": ".ome.tif"}
"""Output formats by name (``utom predict --format``) and the suffix each is written with:
TIFF (contiguous and ImageJ-compatible; tiled and compressed above ``TILED_FROM_PIXELS`` per
plane), OME-Zarr 0.5 with a pyramid, pyramidal tiled OME-TIFF (QuPath, OMERO, Bio-Formats).
Given an output file, its suffix decides (``.ome.tif`` is OME-TIFF, ``.tif`` TIFF)."""
ZARR_FROM_PIXELS = 4096 * 4096
"""Outputs with more pixels than this (planes × height × width) are written as chunked
OME-Zarr unless asked otherwise (whole slides and volumes: readable while Dask or napari
stream them); smaller ones as TIFF. ``utom predict`` and ``utom run`` share this policy."""


def output_pixels(path: Path) -> int:
    """Pixels of one channel of ``path``'s image (all planes)."""
    source = open_image(path)
    try:
        return int(np.prod(source.info.shape[1:], dtype=np.int64))
    finally:
        source.close()


def default_format(image: Path) -> str:
    """The policy: ``zarr`` for outputs above ``ZARR_FROM_PIXELS``, else ``tiff``."""
    return "zarr" if output_pixels(image) > ZARR_FROM_PIXELS else "tiff"


def output_name(image: Path, fmt: str | None = None) -> str:
    """``STEM.tif``, ``STEM.ome.zarr`` or ``STEM.ome.tif`` for the prediction of ``image``."""
    return image_stem(image) + FORMAT_SUFFIXES[fmt or default_format(image)]


def output_info(info: ImageInfo, channels: int, dtype: np.dtype | str) -> ImageInfo:
    """The prediction's shape, pixel type and metadata: the input's (pixel size, the axes its
    planes stack), with the target channels."""
    return ImageInfo((channels, *info.shape[1:]), np.dtype(dtype), dict(info.pixel_size),
                     info.unit, info.stack)


def check_input(source: ImageSource, predictor: TrainedModel) -> None:
    """InputError naming the file when it does not fit the generator: its channels, and for
    XZ/YZ planes a volume with a single z axis."""
    check_channels(source, predictor.generator)
    if predictor.slicing is Slicing.xz_yz and len(source.info.shape) == 4:
        check_planes(source, ("y", "x"), predictor.source.name)


class _OutputSink:
    """The output's sink, whose refused writes are reported as the output's. (The only other
    writer during a prediction is the XZ/YZ pass's scratch store in the temporary folder.)"""

    def __init__(self, sink: ImageSink, path: Path) -> None:
        self.sink, self.path = sink, path

    @contextlib.contextmanager
    def _refusals(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:  # a full disk, a read-only folder, …
            raise DiskError.refused(err, self.path, outcome="nothing was written there"
                                    ) from None

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        with self._refusals():
            self.sink.write(region, data)

    def commit(self, replace: bool) -> None:
        with self._refusals():
            self.sink.commit(replace=replace)


WRITE_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""What only a write is answered with, never a read."""


def _not_the_output(err: OSError, image: Path, output: Path) -> DiskError:
    """A refused write that was not the output's is the scratch store's: the temporary folder
    is full (named, with the way out), not the output's disk; anything else failed reading."""
    if err.errno in WRITE_REFUSALS:
        folder = tempfile.gettempdir()
        return DiskError.refused(err, folder, "the temporary folder cannot take the scratch data "
                                 "of the XZ/YZ pass", outcome="free space there or set TMPDIR to "
                                 f"a folder with room; nothing was written to {output}")
    return DiskError.refused(err, err.filename or image, "cannot read")


def predict_file(image: Path, output: Path, predictor: TrainedModel, options: TileOptions,
                 show_progress: bool = True, overwrite: bool = False) -> None:
    """Predict one file into a temporary output that is moved into place only when complete
    (replacing what is at ``output`` by then only with ``overwrite``)."""
    source = open_image(image)
    try:
        check_input(source, predictor)
        info = output_info(source.info, predictor.generator.out_channels,
                           predictor.target_norm.dtype.value)
        output.parent.mkdir(parents=True, exist_ok=True)
        sink = writer_for(output).create(output, info, chunk=options.tile)
        target = _OutputSink(sink, output)
        try:
            progress = LoopProgress(f"predicting {image.name}", None, unit="tile",
                                    show=show_progress)
            with progress.shown():
                start, pixels = time.perf_counter(), 0

                def advance(tiles: int, total: int, done: int) -> None:
                    nonlocal pixels
                    pixels += done
                    rate = pixels / 1e6 / max(time.perf_counter() - start, 1e-9)
                    progress.update(progress.done + tiles, total, note=f"{rate:.2f} MP/s")

                predict_image(source, predictor.generator, predictor.source_norm,
                              predictor.target_norm, target, options, predictor.slicing, advance)
                # inside: a failing commit clears the bar like any failure
                target.commit(replace=overwrite)
        except BaseException as err:
            sink.abort()
            if isinstance(err, OSError):  # not the output's (those are DiskErrors by now)
                raise _not_the_output(err, image, output) from None
            raise
    finally:
        source.close()
