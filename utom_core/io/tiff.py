"""TIFF via tifffile: lazy regions (memory-mapped or page-wise), ImageJ-compatible streamed output.

Uncompressed contiguous files are memory-mapped per read and unmapped afterwards, so reading a
whole slide band by band never keeps more than one band resident; compressed or scattered files
are read through tifffile's zarr store, which decodes only the strips or tiles a region touches.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from utom_core.errors import InputError, UtomError
from utom_core.io.atomic import move_into_place, remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.io.lazy import ArraySource
from utom_core.io.units import micrometers

RESOLUTION_UNITS = {2: "inch", 3: "centimeter"}
IMAGEJ_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
IMAGEJ_MAX_BYTES = 2**32 - 2**25
"""ImageJ TIFFs are classic (32-bit offsets); larger outputs are written as BigTIFF."""


class WindowedMemmap:
    """A contiguous array in a file, memory-mapped only for the duration of each read or write."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)

    def _map(self, mode: str) -> np.memmap:
        return np.memmap(self.path, self.dtype, mode, self.offset, self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        mapped = self._map("r")
        try:
            return np.array(mapped[index], dtype=self.dtype.newbyteorder("="))
        finally:
            mapped._mmap.close()

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        mapped = self._map("r+")
        try:
            mapped[index] = value
        finally:
            mapped._mmap.close()


def _ome_pixel_size(xml: str) -> dict[str, float]:
    root = ET.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    sizes: dict[str, float] = {}
    for axis in ("x", "y", "z") if pixels is not None else ():
        value = pixels.get(f"PhysicalSize{axis.upper()}")
        size = micrometers(float(value), pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm")
                            ) if value else None
        if size:
            sizes[axis] = size
    return sizes


def _pixel_size(tf: tifffile.TiffFile) -> dict[str, float]:
    """Pixel size in micrometers from OME, ImageJ or the TIFF resolution tags (where present)."""
    if tf.is_ome and tf.ome_metadata:
        sizes = _ome_pixel_size(tf.ome_metadata)
        if sizes:
            return sizes
    page = tf.pages.first
    if "XResolution" not in page.tags:
        return {}
    ij = tf.imagej_metadata or {}
    unit = ij.get("unit") if ij else RESOLUTION_UNITS.get(int(page.resolutionunit))
    rx, ry = page.resolution
    sizes = {axis: micrometers(1.0 / r, unit) if r else None for axis, r in (("x", rx), ("y", ry))}
    sizes["z"] = micrometers(float(ij["spacing"]), unit) if "spacing" in ij else None
    return {axis: size for axis, size in sizes.items() if size}


def _open_array(path: Path, tf: tifffile.TiffFile, series: tifffile.TiffPageSeries):
    """The series as an indexable array: a windowed memmap when possible, else a zarr view."""
    offset = series.dataoffset
    if offset is not None:
        nbytes = math.prod(series.shape) * np.dtype(series.dtype).itemsize
        if offset + nbytes > path.stat().st_size:
            raise InputError(path, "file is truncated (pixel data ends past the end of the file)")
        dtype = np.dtype(series.dtype).newbyteorder(tf.byteorder)
        return WindowedMemmap(path, offset, tuple(series.shape), dtype)
    return zarr.open_array(series.aszarr(), mode="r")


class TiffSource(ArraySource):
    """A TIFF file opened lazily; the file handle stays open for page-wise reads."""

    def __init__(self, path: Path) -> None:
        try:
            self._tf = tifffile.TiffFile(path)
            series = self._tf.series[0]
            array = _open_array(path, self._tf, series)
            pixel_size = _pixel_size(self._tf)
        except InputError:
            raise
        except Exception as err:
            raise InputError(path, f"not a readable TIFF file ({type(err).__name__}: {err})"
                             ) from None
        super().__init__(path, array, series.axes, pixel_size)

    def close(self) -> None:
        super().close()
        self._tf.close()


class TiffReader:
    """Reads .tif/.tiff/.ome.tif (BigTIFF, multi-page, ImageJ hyperstacks, RGB)."""

    name = "tiff"
    suffixes = (".ome.tif", ".ome.tiff", ".tif", ".tiff")

    def open(self, path: Path) -> TiffSource:
        return TiffSource(path)


def _layout(info: ImageInfo) -> tuple[str, bool]:
    """File axes for canonical (C, [Z], Y, X) and whether channels are RGB samples."""
    rgb = info.channels == 3 and info.dtype == np.uint8
    prefix = "Z" if len(info.shape) == 4 else ""
    if rgb:
        return prefix + "YXS", True
    return prefix + ("C" if info.channels > 1 else "") + "YX", False


class TiffSink:
    """A TIFF allocated up front and filled region by region through short-lived memory maps."""

    def __init__(self, path: Path, info: ImageInfo) -> None:
        self.path, self.partial = path, temporary_sibling(path)
        self.axes, rgb = _layout(info)
        self._has_channels = "C" in self.axes or "S" in self.axes
        canonical = "C" + info.spatial_axes.upper()
        self._order = [canonical.index("C" if a == "S" else a) for a in self.axes]
        shape = tuple(info.shape[i] for i in self._order)
        if not self._has_channels:  # single channel: written without a channel axis
            self._order = [i - 1 for i in self._order]
        nbytes = math.prod(shape) * info.dtype.itemsize
        style = ("ome" if path.name.lower().endswith((".ome.tif", ".ome.tiff"))
                 else "imagej" if info.dtype in IMAGEJ_DTYPES and nbytes < IMAGEJ_MAX_BYTES
                 else "bigtiff")
        mapped = tifffile.memmap(self.partial, shape=shape, dtype=info.dtype,
                                 photometric="rgb" if rgb else "minisblack",
                                 **_metadata(info, self.axes, style))
        self._array = WindowedMemmap(self.partial, mapped.offset, shape, info.dtype)
        mapped._mmap.close()

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        spatial = dict(zip("ZYX"[-len(region):], region, strict=True))
        index = tuple(spatial.get(a, slice(None)) for a in self.axes)
        self._array[index] = np.transpose(data if self._has_channels else data[0], self._order)

    def commit(self) -> None:
        move_into_place(self.partial, self.path)

    def abort(self) -> None:
        remove(self.partial)


def _metadata(info: ImageInfo, axes: str, style: str) -> dict[str, Any]:
    """tifffile keyword arguments carrying axes and pixel size for an OME, ImageJ or plain TIFF."""
    size = info.pixel_size
    metadata: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {"ome": True, "bigtiff": True} if style == "ome" else (
        {"imagej": True} if style == "imagej" else {"bigtiff": True})
    if style == "ome":
        for axis, value in size.items():
            metadata[f"PhysicalSize{axis.upper()}"] = value
            metadata[f"PhysicalSize{axis.upper()}Unit"] = "µm"
    elif "x" in size and "y" in size:
        per_unit = 1.0 if style == "imagej" else 1e4  # ImageJ: per micrometer; else per cm
        kwargs["resolution"] = (per_unit / size["x"], per_unit / size["y"])
        if style == "imagej":
            metadata["unit"] = "um"
            if "z" in size:
                metadata["spacing"] = size["z"]
        else:
            kwargs["resolutionunit"] = "CENTIMETER"
    kwargs["metadata"] = metadata
    return kwargs


class TiffWriter:
    """Writes ImageJ-compatible TIFF (BigTIFF beyond 4 GB or for other pixel types)."""

    name = "tiff"
    suffixes = (".ome.tif", ".ome.tiff", ".tif", ".tiff")

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> TiffSink:
        try:
            return TiffSink(path, info)
        except OSError as err:
            raise UtomError(f"{path}: cannot create output ({err.strerror or err})") from None
