"""Resolution levels of an output for viewers: their shapes, 2× mean pooling block by block,
where each level's pixels lie, and how its channels are shown.

Every level halves y and x (z is kept) until the image fits one ``unit`` (a chunk, a shard or a
TIFF tile). A pooled pixel is the mean of a 2×2 block, so its centre lies half a level-0 pixel
beyond the block's first pixel: level k is scaled by 2^k and translated by (2^k − 1)/2 pixels,
which puts every level exactly on top of level 0 in a viewer (OME-Zarr ``translation``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from utom_core.io.base import ImageInfo

Block = tuple[tuple[int, ...], int, int]
"""One block of a coarser level: the indices of its plane (z, or nothing) and its y, x start
in the finer level."""
RGB_COLOURS = ("FF0000", "00FF00", "0000FF")
PALETTE = ("FFFFFF", "FF00FF", "00FFFF", "FFFF00", "FF0000", "00FF00", "0000FF")
WINDOW_PERCENTILES = (0.1, 99.9)
"""Contrast limits shown at first: these percentiles of the coarsest level."""


def level_shapes(shape: tuple[int, ...], unit: int) -> list[tuple[int, ...]]:
    """Shapes of level 0, 1, … (y and x halved, rounded up) until one fits ``unit``²."""
    shapes = [tuple(shape)]
    while max(shapes[-1][-2:]) > unit:
        *lead, height, width = shapes[-1]
        shapes.append((*lead, math.ceil(height / 2), math.ceil(width / 2)))
    return shapes


def downsample(block: np.ndarray) -> np.ndarray:
    """Halve the last two axes by 2×2 means (odd edges repeat their last pixel)."""
    pad = [(0, 0)] * (block.ndim - 2) + [(0, block.shape[-2] % 2), (0, block.shape[-1] % 2)]
    data = np.pad(block.astype(np.float32), pad, mode="edge")
    data = data.reshape(*data.shape[:-2], data.shape[-2] // 2, 2, data.shape[-1] // 2, 2)
    mean = data.mean(axis=(-3, -1))
    if block.dtype.kind in "ui":
        return np.rint(mean).astype(block.dtype)
    return mean.astype(block.dtype)


def blocks(finer: tuple[int, ...], unit: int) -> Iterator[Block]:
    """The blocks of 2·``unit`` pixels of a finer level, each of which makes one whole unit of
    the next level (so blocks can be pooled by independent tasks)."""
    *lead, height, width = finer
    step = 2 * unit
    for plane in np.ndindex(*lead[1:]):
        for y0, x0 in itertools.product(range(0, height, step), range(0, width, step)):
            yield tuple(int(i) for i in plane), y0, x0


def pool_block(finer, coarser, block: Block, unit: int) -> None:
    """Write one unit of ``coarser`` (array-like, C first) from its 2×2 block of ``finer``."""
    plane, y0, x0 = block
    step = 2 * unit
    data = finer[(slice(None), *plane, slice(y0, y0 + step), slice(x0, x0 + step))]
    coarser[(slice(None), *plane, slice(y0 // 2, (y0 + step) // 2),
             slice(x0 // 2, (x0 + step) // 2))] = downsample(np.asarray(data))


def placement(level: int, names: list[str], pixel_size: dict[str, float]
              ) -> tuple[list[float], list[float]]:
    """Scale and translation of ``level`` for axes ``names`` (c, [z], y, x), in pixel size
    units: y and x are pooled, c and z are not."""
    factor = [2.0**level if name in ("y", "x") else 1.0 for name in names]
    size = [pixel_size.get(name, 1.0) if name != "c" else 1.0 for name in names]
    scale = [f * s for f, s in zip(factor, size, strict=True)]
    translation = [(f - 1.0) / 2.0 * s for f, s in zip(factor, size, strict=True)]
    return scale, translation


def is_rgb(info: ImageInfo) -> bool:
    """Three 8-bit channels: shown as one colour image (H&E), not three grey layers."""
    return info.channels == 3 and info.dtype == np.uint8


def windows(info: ImageInfo, coarsest: np.ndarray) -> list[dict[str, float]]:
    """Per channel: the pixel type's range (min, max) and the initial contrast limits (start,
    end): the full range for RGB, else percentiles of the coarsest level."""
    dtype = np.dtype(info.dtype)
    windows = []
    for channel in np.asarray(coarsest, dtype=np.float64).reshape(info.channels, -1):
        if dtype.kind in "ui":
            low, high = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
        else:
            low, high = float(channel.min()), float(channel.max())
        start, end = ((low, high) if is_rgb(info)
                      else map(float, np.percentile(channel, WINDOW_PERCENTILES)))
        windows.append({"min": low, "max": high, "start": start,
                        "end": end if end > start else start + 1.0})
    return windows


def colours(info: ImageInfo) -> list[str]:
    """Channel colours (hex RGB): red, green, blue for RGB; white for one channel."""
    if is_rgb(info):
        return list(RGB_COLOURS)
    return [PALETTE[i % len(PALETTE)] for i in range(info.channels)]
