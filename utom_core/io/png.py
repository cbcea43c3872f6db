"""PNG via Pillow: small 8/16-bit grey or RGB images (PNG has no random access, so no streaming)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from utom_core.errors import InputError, UtomError
from utom_core.io.atomic import remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.io.lazy import check_fits_memory
from utom_core.io.replaceable import commit_output

MAX_PIXELS = 2**26
"""Largest PNG written (64 MP): bigger outputs belong in TIFF or OME-Zarr."""
DECODED_BYTES = 4 * 2
"""Upper bound of the bytes per pixel and band decoding needs (Pillow's 32-bit modes, plus
the copy into an array)."""


def _load(path: Path) -> np.ndarray:
    """Decode the whole file to (C, Y, X): alpha dropped, palettes expanded, 16-bit kept.

    The size the header declares is checked against free memory before decoding; Pillow's own
    decompression-bomb warning is left out (its hard limit, an error, still applies)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            check_fits_memory(path, math.prod(image.size) * len(image.getbands()) * DECODED_BYTES,
                              f"the PNG ({image.size[0]} × {image.size[1]} pixels)")
            return _decode(image)


def _decode(image: Image.Image) -> np.ndarray:
    """The pixels of an opened PNG as (C, Y, X)."""
    image.load()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.uint16)[None]  # PNG stores at most 16 bits
    if image.mode in ("L", "LA", "1"):
        return np.asarray(image.convert("L"))[None]
    return np.moveaxis(np.asarray(image.convert("RGB")), -1, 0)


class PngSource:
    """A decoded PNG held in memory."""

    def __init__(self, path: Path) -> None:
        try:
            self._data = np.ascontiguousarray(_load(path))
        except InputError:
            raise
        except Exception as err:
            raise InputError(path, f"not a readable PNG file ({type(err).__name__}: {err})"
                             ) from None
        self.path = path
        self.info = ImageInfo(self._data.shape, self._data.dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return self._data[(slice(None), *region)].copy()

    def close(self) -> None:
        self._data = np.empty((0, 0, 0), self._data.dtype)


class PngReader:
    """Reads .png files (8/16-bit grey, RGB; alpha dropped)."""

    name = "png"
    suffixes = (".png",)

    def open(self, path: Path) -> PngSource:
        return PngSource(path)


class PngSink:
    """Collects a small image in memory and saves it on commit."""

    def __init__(self, path: Path, info: ImageInfo) -> None:
        self.path, self.partial = path, temporary_sibling(path)
        self._data = np.zeros(info.shape, info.dtype)

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self._data[(slice(None), *region)] = data

    def commit(self, replace: bool = False) -> None:
        image = self._data[0] if self._data.shape[0] == 1 else np.moveaxis(self._data, 0, -1)
        Image.fromarray(image).save(self.partial, format="PNG")
        commit_output(self.partial, self.path, replace, "png")

    def abort(self) -> None:
        remove(self.partial)


class PngWriter:
    """Writes small 2D PNGs: uint8 grey or RGB, uint16 grey."""

    name = "png"
    suffixes = (".png",)

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> PngSink:
        fits = (len(info.shape) == 3 and info.shape[1] * info.shape[2] <= MAX_PIXELS
                and (info.channels, info.dtype) in ((1, np.uint8), (3, np.uint8), (1, np.uint16)))
        if not fits:
            raise UtomError(f"{path}: PNG holds only small 2D uint8 grey/RGB or uint16 grey "
                            f"images, not {info.dtype} {info.shape}; write TIFF or OME-Zarr")
        return PngSink(path, info)
