"""TIFF via tifffile: lazy regions (memory-mapped or page-wise), ImageJ-compatible streamed output.

Uncompressed contiguous files are memory-mapped per read and unmapped afterwards, so reading a
whole slide band by band never keeps more than one band resident; compressed or scattered files
are read through tifffile's zarr store, which decodes only the strips or tiles a region touches.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import tifffile
import zarr

from utom_core.errors import DiskError, InputError
from utom_core.io.atomic import remove, temporary_sibling
from utom_core.io.base import ImageInfo, ImageSink
from utom_core.io.lazy import ArraySource, check_fits_memory
from utom_core.io.regions import FileRegions
from utom_core.io.replaceable import commit_output
from utom_core.io.tifflayout import IMAGEJ_DTYPES, IMAGEJ_MAX_BYTES, FileLayout, tiff_metadata
from utom_core.io.units import micrometers, number

RESOLUTION_UNITS = {2: "inch", 3: "centimeter"}


class WindowedMemmap:
    """A contiguous array in a file, memory-mapped only for the duration of each read."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)

    def _map(self, mode: Literal["r", "r+"]) -> np.memmap:
        return np.memmap(self.path, self.dtype, mode, self.offset, self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        mapped = self._map("r")
        try:
            return np.array(mapped[index], dtype=self.dtype.newbyteorder("="))
        finally:
            mapped._mmap.close()  # type: ignore[attr-defined]  # private; numpy's stubs omit it


def _ome_pixel_size(xml: str) -> dict[str, float]:
    root = ET.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    sizes: dict[str, float] = {}
    if pixels is None:
        return sizes
    for axis in ("x", "y", "z"):
        value = pixels.get(f"PhysicalSize{axis.upper()}")
        size = micrometers(number(value), pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm")
                           ) if value is not None else None
        if size is not None:
            sizes[axis] = size
    return sizes


def _pixel_size(tf: tifffile.TiffFile) -> dict[str, float]:
    """Pixel size in micrometers from OME, ImageJ or the TIFF resolution tags (where present)."""
    if tf.is_ome and tf.ome_metadata:
        ome = _ome_pixel_size(tf.ome_metadata)
        if ome:
            return ome
    page = tf.pages.first
    if "XResolution" not in page.tags:
        return {}
    ij = tf.imagej_metadata or {}
    unit = ij.get("unit") if ij else RESOLUTION_UNITS.get(int(page.resolutionunit))
    rx, ry = page.resolution
    sizes: dict[str, float | None] = {axis: micrometers(1.0 / r, unit) if r else None
                                      for axis, r in (("x", rx), ("y", ry))}
    sizes["z"] = micrometers(number(ij["spacing"]), unit) if "spacing" in ij else None
    return {axis: size for axis, size in sizes.items() if size is not None}


def _open_array(path: Path, tf: tifffile.TiffFile, series: tifffile.TiffPageSeries):
    """The series as an indexable array: a windowed memmap when possible, else a zarr view
    (refused when one of its strips or tiles, always decoded whole, cannot fit in memory)."""
    if 0 in series.shape:  # tifffile's offset of no pixels would read as truncation
        raise InputError(path, f"image is empty (shape {tuple(series.shape)})")
    offset = series.dataoffset
    if offset is not None:
        nbytes = math.prod(series.shape) * np.dtype(series.dtype).itemsize
        if offset + nbytes > path.stat().st_size:
            raise InputError(path, "file is truncated (pixel data ends past the end of the file)")
        dtype = np.dtype(series.dtype).newbyteorder(tf.byteorder)
        return WindowedMemmap(path, offset, tuple(series.shape), dtype)
    array = zarr.open_array(series.aszarr(level=0), mode="r")  # level 0 of a pyramid
    unit = "tile" if series.keyframe.is_tiled else "strip"
    check_fits_memory(path, math.prod(array.chunks) * array.dtype.itemsize,
                      f"each {unit} ({' × '.join(map(str, array.chunks))} values)")
    return array


MULTI_IMAGE_KINDS = ("generic", "shaped", "uniform", "imagej", "ome")
"""Series kinds in which every series is image data. In the others (whole-slide formats: SVS,
NDPI, SCN, …) the series after the first are the slide's label, macro and thumbnail."""


def _image_series(tf: tifffile.TiffFile) -> list[tifffile.TiffPageSeries]:
    """The series holding the image: every one (reduced-resolution previews aside) in files
    of several images, such as frames appended one by one; the first in whole-slide files."""
    series = tf.series
    if series[0].kind.lower() not in MULTI_IMAGE_KINDS:
        return series[:1]
    return [s for s in series if not s.keyframe.is_reduced] or series[:1]


class SeriesStack:
    """Series of one shape and pixel type as one array, stacked along a new leading axis."""

    def __init__(self, arrays: list[Any]) -> None:
        self._arrays = arrays
        self.shape = (len(arrays), *arrays[0].shape)
        self.dtype = np.dtype(arrays[0].dtype)

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        which, rest = index[0], tuple(index[1:])
        if isinstance(which, slice):
            return np.stack([np.asarray(a[rest]) for a in self._arrays[which]])
        return np.asarray(self._arrays[which][rest])


def _open_series(path: Path, tf: tifffile.TiffFile) -> tuple[Any, str]:
    """Every series as one array and its axes: several series must agree in shape, pixel type
    and axes, and are read as planes of an image sequence (axis I, as tifffile names pages
    without metadata); otherwise the file is refused rather than read in part."""
    series = _image_series(tf)
    if len(series) == 1:
        return _open_array(path, tf, series[0]), series[0].axes
    kinds = list(dict.fromkeys((tuple(s.shape), np.dtype(s.dtype).name, s.axes) for s in series))
    if len(kinds) > 1:
        shown = ", ".join(f"{shape} {dtype}" for shape, dtype, _ in kinds[:4])
        raise InputError(path, f"holds {len(series)} image series that differ in shape, pixel "
                               f"type or axes ({shown}{', …' if len(kinds) > 4 else ''}); "
                               "utom reads a file as one image: save each as its own file")
    return SeriesStack([_open_array(path, tf, s) for s in series]), "I" + series[0].axes


def _unreadable(path: Path, err: Exception) -> InputError:
    return InputError(path, f"not a readable TIFF file ({type(err).__name__}: {err})")


class TiffSource(ArraySource):
    """A TIFF file opened lazily; the file handle stays open for page-wise reads."""

    def __init__(self, path: Path) -> None:
        try:
            self._tf = tifffile.TiffFile(path)
        except Exception as err:
            raise _unreadable(path, err) from None
        try:
            array, axes = _open_series(path, self._tf)
            super().__init__(path, array, axes, _pixel_size(self._tf))
        except BaseException as err:  # a refused file is closed, not left open
            self._tf.close()
            if isinstance(err, InputError) or not isinstance(err, Exception):
                raise
            raise _unreadable(path, err) from None

    def close(self) -> None:
        super().close()
        self._tf.close()


class TiffReader:
    """Reads .tif/.tiff/.ome.tif (BigTIFF, multi-page, ImageJ hyperstacks, RGB)."""

    name = "tiff"
    suffixes = (".ome.tif", ".ome.tiff", ".tif", ".tiff")

    def open(self, path: Path) -> TiffSource:
        return TiffSource(path)


class TiffSink:
    """A TIFF whose pixel data is allocated on disk up front and filled region by region."""

    def __init__(self, path: Path, info: ImageInfo) -> None:
        self.path, self.partial = path, temporary_sibling(path)
        layout = FileLayout.of(info)
        self.axes, self._order = layout.axes, layout.order
        self._has_channels = layout.has_channels
        nbytes = math.prod(layout.shape) * info.dtype.itemsize
        style = "imagej" if info.dtype in IMAGEJ_DTYPES and nbytes < IMAGEJ_MAX_BYTES else "bigtiff"
        try:
            # returnoffset=True: the data offset and size (typed optional: None without it)
            offset, _ = cast(tuple[int, int], tifffile.imwrite(
                self.partial, data=None, shape=layout.file_shape, dtype=info.dtype,
                returnoffset=True, photometric=layout.photometric,
                **tiff_metadata(info, layout.file_axes, style)))
            self._array = FileRegions(self.partial, offset, layout.shape, info.dtype)
            self._array.reserve()
        except BaseException:
            remove(self.partial)
            raise

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        spatial = dict(zip("ZYX"[-len(region):], region, strict=True))
        index = tuple(spatial.get(a, slice(None)) for a in self.axes)
        self._array[index] = np.transpose(data if self._has_channels else data[0], self._order)

    def commit(self, replace: bool = False) -> None:
        commit_output(self.partial, self.path, replace, "tiff")

    def abort(self) -> None:
        remove(self.partial)


class TiffWriter:
    """Writes ImageJ-compatible TIFF (BigTIFF beyond 4 GB or for other pixel types), tiled
    TIFF for large planes, pyramidal OME-TIFF."""

    name = "tiff"
    suffixes = (".ome.tif", ".ome.tiff", ".tif", ".tiff")

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> ImageSink:
        """OME-TIFF (``.ome.tif``) and images with planes above ``TILED_FROM_PIXELS`` tiled and
        compressed (io.ometiff); other images contiguous, ImageJ-compatible."""
        from utom_core.io.ometiff import TILED_FROM_PIXELS, TiledTiffSink

        ome = path.name.lower().endswith((".ome.tif", ".ome.tiff"))
        try:
            if ome or math.prod(info.shape[-2:]) > TILED_FROM_PIXELS:
                return TiledTiffSink(path, info, chunk, ome=ome)
            return TiffSink(path, info)
        except OSError as err:  # also a disk without room for all of it (reserved up front)
            raise DiskError.refused(err, path, "cannot create output") from None
