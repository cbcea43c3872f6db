"""OME-Zarr 0.5 (zarr v3): lazy chunked reads, chunk-aligned streamed writes and a pyramid.

Layout written: a group whose ``zarr.json`` holds ``attributes.ome`` (version "0.5",
``multiscales`` with typed axes c, [z], y, x and micrometer units), arrays "0", "1", … (each
level halves y and x, one ``scale`` transform each) with ``dimension_names`` set.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from utom_core.errors import InputError, UtomError
from utom_core.io.atomic import move_into_place, remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.io.lazy import ArraySource
from utom_core.io.units import micrometers

OME_VERSION = "0.5"
AXIS_TYPES = {"c": "channel", "t": "time", "z": "space", "y": "space", "x": "space"}


def _multiscale(path: Path) -> tuple[dict[str, Any], zarr.Group]:
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs)["multiscales"]
        return multiscales[0], group
    except Exception as err:
        raise InputError(path, f"not a readable OME-Zarr image ({type(err).__name__}: {err})"
                         ) from None


def _scale(transforms: list[dict[str, Any]], n: int) -> list[float]:
    scale = [1.0] * n
    for transform in transforms:
        if transform.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, transform["scale"], strict=True)]
    return scale


def _check_complete(path: Path, array: zarr.Array, name: str) -> None:
    """Refuse a store with chunks missing: zarr would silently read them as the fill value.

    An interrupted copy or download looks exactly like that; utom writes every chunk, so its
    own outputs always pass. (Stores written with empty chunks omitted are refused too.)
    """
    try:
        stored, total = array.nchunks_initialized, array.nchunks
    except Exception as err:
        raise InputError(path, f"cannot list the chunks of array {name!r} "
                               f"({type(err).__name__}: {err})") from None
    if stored < total:
        raise InputError(path, f"{total - stored} of {total} chunks of array {name!r} are "
                               "missing (an incomplete copy?); they would read as "
                               f"{array.fill_value}, so the image is refused")


class OmeZarrSource(ArraySource):
    """Level 0 of an OME-Zarr multiscale image."""

    def __init__(self, path: Path) -> None:
        meta, group = _multiscale(path)
        try:
            axes = meta["axes"]
            dataset = meta["datasets"][0]
            array = group[dataset["path"]]
            scale = _scale(meta.get("coordinateTransformations", []), len(axes))
            level = _scale(dataset.get("coordinateTransformations", []), len(axes))
        except Exception as err:
            raise InputError(path, f"invalid OME-Zarr metadata ({type(err).__name__}: {err})"
                             ) from None
        _check_complete(path, array, dataset["path"])
        axes = [a if isinstance(a, dict) else {"name": str(a)} for a in axes]  # 0.3: names only
        names = [a["name"].lower() for a in axes]
        letters = "".join("C" if a.get("type", AXIS_TYPES.get(n)) == "channel" else n.upper()
                          for n, a in zip(names, axes, strict=True))
        pixel_size = {}
        for name, axis, s0, s1 in zip(names, axes, scale, level, strict=True):
            size = micrometers(s0 * s1, axis.get("unit")) if name in ("z", "y", "x") else None
            if size:
                pixel_size[name] = size
        super().__init__(path, array, letters, pixel_size)


class OmeZarrReader:
    """Reads OME-Zarr images (.zarr / .ome.zarr folders; 0.5, and 0.4 through zarr's v2 support)."""

    name = "ome-zarr"
    suffixes = (".ome.zarr", ".zarr")

    def open(self, path: Path) -> OmeZarrSource:
        return OmeZarrSource(path)


def _downsample(block: np.ndarray) -> np.ndarray:
    """Halve the last two axes by 2x2 means (odd edges repeat their last pixel)."""
    pad = [(0, 0)] * (block.ndim - 2) + [(0, block.shape[-2] % 2), (0, block.shape[-1] % 2)]
    data = np.pad(block.astype(np.float32), pad, mode="edge")
    data = data.reshape(*data.shape[:-2], data.shape[-2] // 2, 2, data.shape[-1] // 2, 2)
    mean = data.mean(axis=(-3, -1))
    return np.rint(mean).astype(block.dtype) if block.dtype.kind in "ui" else mean.astype(
        block.dtype)


class OmeZarrSink:
    """Level 0 is written chunk by chunk; coarser levels are built from it on commit."""

    def __init__(self, path: Path, info: ImageInfo, chunk: int) -> None:
        self.path, self.partial, self.info, self.chunk = path, temporary_sibling(path), info, chunk
        self.names = ["c", *info.spatial_axes]
        self.group = zarr.create_group(str(self.partial), zarr_format=3)
        self._level0 = self._create_level(0, info.shape)  # keeps its write config

    def _create_level(self, level: int, shape: tuple[int, ...]) -> zarr.Array:
        chunks = (shape[0], *([1] if len(shape) == 4 else []),
                  min(self.chunk, shape[-2]), min(self.chunk, shape[-1]))
        return self.group.create_array(str(level), shape=shape, dtype=self.info.dtype,
                                       chunks=chunks, fill_value=0, dimension_names=self.names,
                                       config={"write_empty_chunks": True})  # see _check_complete

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self._level0[(slice(None), *region)] = data

    def _pyramid(self) -> int:
        """Write levels 1, 2, … until the image fits one chunk; returns the number of levels."""
        level = 0
        while max(self.group[str(level)].shape[-2:]) > self.chunk:
            source = self.group[str(level)]
            *lead, height, width = source.shape
            target = self._create_level(level + 1, (*lead, math.ceil(height / 2),
                                                    math.ceil(width / 2)))
            step = 2 * self.chunk  # one target chunk per block: memory independent of size
            for plane in np.ndindex(*lead[1:]):
                for y0, x0 in itertools.product(range(0, height, step), range(0, width, step)):
                    block = source[(slice(None), *plane, slice(y0, y0 + step),
                                    slice(x0, x0 + step))]
                    target[(slice(None), *plane, slice(y0 // 2, (y0 + step) // 2),
                            slice(x0 // 2, (x0 + step) // 2))] = _downsample(block)
            level += 1
        return level + 1

    def _attributes(self, levels: int) -> dict[str, Any]:
        size = self.info.pixel_size
        axes = []
        for name in self.names:
            axis = {"name": name, "type": AXIS_TYPES[name]}
            if name in size:
                axis["unit"] = "micrometer"
            axes.append(axis)
        datasets = []
        for level in range(levels):
            factor = [1.0] + [1.0 if n == "z" else 2.0**level for n in self.names[1:]]
            scale = [f * size.get(n, 1.0) for f, n in zip(factor, self.names, strict=True)]
            datasets.append({"path": str(level), "coordinateTransformations":
                             [{"type": "scale", "scale": scale}]})
        return {"ome": {"version": OME_VERSION, "multiscales": [
            {"name": self.path.name, "axes": axes, "datasets": datasets}]}}

    def commit(self) -> None:
        self.group.update_attributes(self._attributes(self._pyramid()))
        move_into_place(self.partial, self.path)

    def abort(self) -> None:
        remove(self.partial)


class OmeZarrWriter:
    """Writes OME-Zarr 0.5 with chunks of ``chunk`` pixels in y and x (one z plane deep)."""

    name = "ome-zarr"
    suffixes = (".ome.zarr", ".zarr")

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> OmeZarrSink:
        try:
            return OmeZarrSink(path, info, chunk)
        except OSError as err:
            raise UtomError(f"{path}: cannot create output ({err.strerror or err})") from None
