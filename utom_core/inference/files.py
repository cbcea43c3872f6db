"""Predicting into a file: the output-format policy, the progress bar, refusals named by the
file they concern, and a commit that makes the output appear complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from utom_core.errors import DiskError, UtomError
from utom_core.inference.fidelity import fidelity_path, remove_stale_map
from utom_core.inference.predictor import Predictor
from utom_core.io import FormatTable, can_write, image_stem, open_image, writer_for
from utom_core.io.base import ImageInfo, ImageSink, ImageSource
from utom_core.io.replaceable import check_replaceable
from utom_core.progress import LoopProgress

FORMAT_SUFFIXES = {"tiff": ".tif", "zarr": ".ome.zarr", "ome-tiff": ".ome.tif"}
"""Output formats by name (``utom predict --format``) and the suffix each is written with:
TIFF (contiguous and ImageJ-compatible; tiled and compressed above ``TILED_FROM_PIXELS`` per
plane), OME-Zarr 0.5 with a pyramid, pyramidal tiled OME-TIFF (QuPath, OMERO, Bio-Formats).
Given an output file, its suffix decides (``.ome.tif`` is OME-TIFF, ``.tif`` TIFF)."""
ZARR_FROM_PIXELS = 4096 * 4096
"""Outputs with more pixels than this (planes × height × width) are written as chunked
OME-Zarr unless asked otherwise (whole slides and volumes: readable while Dask or napari
stream them); smaller ones as TIFF. ``utom predict`` and ``utom run`` share this policy."""


def default_format(info: ImageInfo) -> str:
    """The policy: ``zarr`` for outputs above ``ZARR_FROM_PIXELS``, else ``tiff``."""
    pixels = int(np.prod(info.shape[1:], dtype=np.int64))
    return "zarr" if pixels > ZARR_FROM_PIXELS else "tiff"


def output_name(source: ImageSource, fmt: str | None = None,
                formats: FormatTable | None = None) -> str:
    """``STEM.tif``, ``STEM.ome.zarr`` or ``STEM.ome.tif`` for the prediction of ``source``."""
    return (image_stem(source.path, formats=formats)
            + FORMAT_SUFFIXES[fmt or default_format(source.info)])


def distinct_outputs(pairs: list[tuple[Path, Path]], fidelity: bool,
                     formats: FormatTable | None = None) -> list[Path]:
    """Every file a batch of (input, output) pairs writes (with ``fidelity``, each map too),
    refusing, before any work, two that would share a path: the second would replace the
    first (an input given twice, ``a.fidelity.tif`` predicted beside ``a.tif``'s map, two
    tests named ``t.tif``)."""
    written: dict[Path, tuple[Path, str]] = {}
    for image, output in pairs:
        maps = [(fidelity_path(output, formats), "fidelity map")] if fidelity else []
        for path, what in [(output, "prediction"), *maps]:
            if path in written:
                first, was = written[path]
                if first.resolve() == image.resolve():
                    raise UtomError(f"{image}: given twice (its prediction would be {path} "
                                    "twice); give each input once")
                raise UtomError(f"{path} would hold both the {was} of {first} and the {what} "
                                f"of {image}: rename one of the inputs")
            written[path] = (image, what)
    return list(written)


class OpenImages:
    """A batch's inputs, each opened once, on first use, for all a prediction asks of it (its
    output's name, the check, the overlap, the prediction); closed once predicted, or at the
    end of the ``with`` block. At most ``MAX_OPEN`` stay open: a folder of thousands of images
    must not hold thousands of file handles (or decoded PNGs), so beyond that the least
    recently used is closed and opened again when asked for."""

    MAX_OPEN = 16

    def __init__(self, formats: FormatTable | None = None) -> None:
        self.formats = formats
        self._open: OrderedDict[Path, ImageSource] = OrderedDict()

    def __getitem__(self, path: Path) -> ImageSource:
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        while len(self._open) >= self.MAX_OPEN:
            self._open.popitem(last=False)[1].close()
        self._open[path] = source = open_image(path, formats=self.formats)
        return source

    def close(self, path: Path) -> None:
        source = self._open.pop(path, None)
        if source is not None:
            source.close()

    def __enter__(self) -> OpenImages:
        return self

    def __exit__(self, *_: object) -> None:
        for path in list(self._open):
            self.close(path)


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

    def commit(self, replace: bool = False) -> None:
        with self._refusals():
            self.sink.commit(replace=replace)

    def abort(self) -> None:
        self.sink.abort()


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


def write_prediction(predictor: Predictor, source: ImageSource, output: Path,
                     overwrite: bool = False, show_progress: bool = True) -> None:
    """Predict an open input into a temporary output that is moved into place only when
    complete (replacing what is at ``output`` by then only with ``overwrite``); with the
    predictor's ``fidelity``, its map goes beside it (``fidelity_path``)."""
    created = []
    sibling = fidelity_path(output, predictor.formats) if predictor.options.fidelity else None
    for path in (output, *([sibling] if sibling is not None else [])):
        # refused before any tile for every caller (CLI, utom run, napari, the Python API)
        if overwrite:  # only what utom writes there
            check_replaceable(path, writer_for(path, formats=predictor.formats).name)
        elif path.exists() or path.is_symlink():
            raise UtomError(f"{path} already exists (use --overwrite to replace it)")

    def create(info: ImageInfo, path: Path = output) -> _OutputSink:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = writer_for(path, formats=predictor.formats)
        created.append(_OutputSink(writer.create(path, info, chunk=predictor.options.tile),
                                   path))
        return created[-1]

    progress = LoopProgress(f"predicting {source.path.name}", None, unit="tile",
                            show=show_progress)
    start, pixels = time.perf_counter(), 0

    def advance(tiles: int, total: int, done: int) -> None:
        nonlocal pixels
        pixels += done
        rate = pixels / 1e6 / max(time.perf_counter() - start, 1e-9)
        progress.update(progress.done + tiles, total, note=f"{rate:.2f} MP/s")

    try:
        with progress.shown():  # a failing commit clears the bar like any failure
            predictor.predict(source, create, advance, replace=overwrite,
                              create_fidelity=None if sibling is None
                              else lambda info: create(info, sibling))
    except OSError as err:  # not the output's (those are DiskErrors by now)
        if not created:
            raise
        raise _not_the_output(err, source.path, output) from None


def predict_file(predictor: Predictor, image: Path, out: Path, fmt: str | None = None,
                 overwrite: bool = False, show_progress: bool = True) -> Path:
    """Predict the file ``image`` into ``out``: an output file (its suffix chooses the format),
    or a folder that receives it named by the output-format policy (with ``overwrite`` and no
    map, an earlier prediction's map there goes: ``remove_stale_map``). Returns the output."""
    source = predictor.open(image)
    try:
        output = out if can_write(out, formats=predictor.formats) else (
            out / output_name(source, fmt, predictor.formats))
        replaced = output.exists() or output.is_symlink()
        write_prediction(predictor, source, output, overwrite, show_progress)
        if replaced and overwrite and not predictor.options.fidelity:
            remove_stale_map(output, {image.resolve(), output.resolve()}, predictor.formats,
                             say=show_progress)
        return output
    finally:
        source.close()
