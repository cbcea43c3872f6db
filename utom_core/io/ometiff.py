"""Tiled, compressed TIFF written tile by tile: pyramidal OME-TIFF (the format QuPath, OMERO
and Bio-Formats open) and plain tiled TIFF for large planes.

A tiled TIFF is written tile after tile, page after page and level after level, while
prediction finishes rows in bands. The sink therefore keeps the image in a hidden scratch
OME-Zarr beside the output (same disk, compressed), builds the pyramid there, and on commit
streams each level into the TIFF from an iterator of tiles: memory holds one tile, whatever
the image size. Writes are ordinary file writes (never a memory map), so a full disk is an
``OSError`` naming the output; the scratch store and the partial TIFF are removed either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from utom_core.io.atomic import remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.io.omezarr import OmeZarrSink
from utom_core.io.replaceable import commit_output
from utom_core.io.tifflayout import FileLayout, tiff_metadata

TILED_FROM_PIXELS = 4096 * 4096
"""Plain TIFF outputs with planes above this are tiled and compressed (readers then decode
only the tiles a view or a region needs); smaller ones stay contiguous and ImageJ-compatible."""
COMPRESSION = "zlib"
"""Deflate: lossless, and read by every TIFF reader (Bio-Formats, QuPath, ImageJ, libtiff)."""
CLASSIC_MAX_BYTES = 2**32 - 2**26
"""Above this (all levels, uncompressed) the file is BigTIFF: 32-bit offsets would overflow."""


def tile_side(chunk: int) -> int:
    """TIFF tiles are multiples of 16 pixels."""
    return max(16, chunk // 16 * 16)


class TiledTiffSink:
    """Level 0 goes into a scratch OME-Zarr; ``commit`` writes the TIFF and renames it."""

    def __init__(self, path: Path, info: ImageInfo, chunk: int = 512, ome: bool = True) -> None:
        self.path, self.info, self.ome = path, info, ome
        self.tile = tile_side(chunk)
        self.layout = FileLayout.of(info)
        self.partial = temporary_sibling(path)
        self.scratch = OmeZarrSink(path, info, self.tile, partial=temporary_sibling(path))

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.scratch.write(region, data)

    def commit(self, replace: bool = False) -> None:
        try:
            levels = self.scratch.pyramid() if self.ome else 1
            self._write_tiff(levels)
            commit_output(self.partial, self.path, replace, "tiff")
        finally:
            self.scratch.abort()

    def abort(self) -> None:
        self.scratch.abort()
        remove(self.partial)

    def _write_tiff(self, levels: int) -> None:
        total = sum(math.prod(self.scratch.level(k).shape) for k in range(levels))
        big = total * self.info.dtype.itemsize > CLASSIC_MAX_BYTES
        kwargs = tiff_metadata(self.info, self.layout.file_axes, "ome" if self.ome else "plain")
        metadata, resolution = kwargs["metadata"], kwargs.get("resolution")
        with tifffile.TiffWriter(self.partial, bigtiff=big, ome=self.ome) as tif:
            for level in range(levels):
                array = self.scratch.level(level)
                shape = self.layout.file_shape[:-3 if self.layout.rgb else -2] + (
                    (*array.shape[-2:], 3) if self.layout.rgb else array.shape[-2:])
                factor = 2**level
                tif.write(self._tiles(array), shape=shape, dtype=self.info.dtype,
                          photometric=self.layout.photometric, tile=(self.tile, self.tile),
                          compression=COMPRESSION, subifds=levels - 1 if level == 0 else None,
                          subfiletype=1 if level else 0,
                          metadata=metadata if level == 0 else None,
                          resolution=None if resolution is None else
                          tuple(r / factor for r in resolution),
                          resolutionunit=kwargs.get("resolutionunit"))

    def _tiles(self, array) -> Iterator[np.ndarray]:
        """The level's tiles in file order: page by page (the file's leading axes in C
        order), row-major within a page; RGB tiles as (y, x, samples)."""
        layout, t = self.layout, self.tile
        height, width = array.shape[-2:]
        lead = [a for a in layout.axes if a in "CZ"]
        for index in np.ndindex(*(layout.shape[layout.axes.index(a)] for a in lead)):
            page = dict(zip(lead, index, strict=True))
            where = [slice(None)] if layout.rgb else [slice(page.get("C", 0),
                                                             page.get("C", 0) + 1)]
            if len(array.shape) == 4:
                where.append(slice(page["Z"], page["Z"] + 1))
            for y0 in range(0, height, t):
                for x0 in range(0, width, t):
                    block = np.asarray(array[(*where, slice(y0, y0 + t), slice(x0, x0 + t))])
                    block = block.reshape(block.shape[0], *block.shape[-2:])
                    yield np.moveaxis(block, 0, -1) if layout.rgb else block[0]
