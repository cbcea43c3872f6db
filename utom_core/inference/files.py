"""Predicting a file into a file: the output-format policy, the output's metadata, the
progress bar, and a commit that makes the output appear complete or not at all."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich import progress as bar

from utom_core.console import console, progress_display
from utom_core.data.images import check_planes
from utom_core.errors import UtomError
from utom_core.inference.planes import TileOptions, check_channels
from utom_core.inference.volumes import predict_image
from utom_core.io import image_stem, open_image, writer_for
from utom_core.io.base import ImageInfo
from utom_core.runs import Predictor
from utom_core.task import Slicing

FORMAT_SUFFIXES = {"tiff": ".tif", "zarr": ".ome.zarr"}
"""Output formats by name (``utom predict --format``) and the suffix each is written with."""
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
    """``STEM.tif`` or ``STEM.ome.zarr`` for the prediction of ``image``."""
    return image_stem(image) + FORMAT_SUFFIXES[fmt or default_format(image)]


def output_info(info: ImageInfo, channels: int, dtype: np.dtype | str) -> ImageInfo:
    """The prediction's shape, pixel type and metadata: the input's, with the target channels."""
    return ImageInfo((channels, *info.shape[1:]), np.dtype(dtype), dict(info.pixel_size),
                     info.unit)


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
