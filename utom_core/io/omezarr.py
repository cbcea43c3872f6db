"""OME-Zarr 0.5 (zarr v3): lazy chunked reads, chunk-aligned streamed writes and a pyramid.

Layout written: a group whose ``zarr.json`` holds ``attributes.ome`` (version "0.5",
``multiscales`` with typed axes c, [z], y, x and micrometer units; ``omero`` channel colours and
contrast limits), arrays "0", "1", … (each level halves y and x: a ``scale`` and, from level
1, the half-pixel ``translation`` of 2× mean pooling) with ``dimension_names`` set.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from utom_core.errors import DiskError, InputError
from utom_core.io.atomic import remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.io.lazy import ArraySource, check_fits_memory
from utom_core.io.pyramid import (
    Block,
    blocks,
    colours,
    is_rgb,
    level_shapes,
    placement,
    pool_block,
    windows,
)
from utom_core.io.replaceable import commit_output
from utom_core.io.units import micrometers, usable

zarr.config.set({"array.write_empty_chunks": True})
"""Every chunk is stored, also all-zero ones, however an array is opened (the runtime config
does not persist with an array, and reopened arrays would drop zero chunks): a missing chunk
then always means an incomplete copy, which the reader refuses."""

OME_VERSION = "0.5"
AXIS_TYPES = {"c": "channel", "t": "time", "z": "space", "y": "space", "x": "space"}


def _multiscale(path: Path) -> tuple[dict[str, Any], zarr.Group]:
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs: dict[str, Any] = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs)["multiscales"]
        return multiscales[0], group
    except Exception as err:
        raise InputError(path, f"not a readable OME-Zarr image ({type(err).__name__}: {err})"
                         ) from None


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The member ``name`` of ``group``, refused unless it is an array (not a subgroup)."""
    member = group[name]
    if not isinstance(member, zarr.Array):
        raise TypeError(f"{name!r} is a group, not an array")
    return member


def _full_resolution(group: zarr.Group, datasets: list[dict[str, Any]]
                     ) -> tuple[dict[str, Any], zarr.Array]:
    """The largest level: the spec lists it first, but a writer that lists levels coarse-first
    must not have its thumbnail predicted."""
    levels = [(dataset, _array(group, dataset["path"])) for dataset in datasets]
    return max(levels, key=lambda level: math.prod(level[1].shape))


def _scale(transforms: list[dict[str, Any]], n: int) -> list[float]:
    scale = [1.0] * n
    for transform in transforms:
        if transform.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, transform["scale"], strict=True)]
    return scale


def check_complete(path: Path, array: zarr.Array, name: str) -> None:
    """Refuse a store with chunks missing: zarr would silently read them as the fill value.

    An interrupted copy or download looks exactly like that; utom writes every chunk, so its
    own outputs always pass. (Stores written with empty chunks omitted are refused too.)
    """
    try:
        if array.shards:  # zarr counts each stored shard as all its chunks, also an edge shard
            # whose chunks lie partly outside the image: count the shards
            per_shard = math.prod(s // c for s, c in zip(array.shards, array.chunks, strict=True))
            stored, unit = array.nchunks_initialized // per_shard, "shards"
            total = math.prod(-(-n // s) for n, s in zip(array.shape, array.shards, strict=True))
        else:
            stored, total, unit = array.nchunks_initialized, array.nchunks, "chunks"
    except Exception as err:
        raise InputError(path, f"cannot list the chunks of array {name!r} "
                               f"({type(err).__name__}: {err})") from None
    if stored < total:
        raise InputError(path, f"{total - stored} of {total} {unit} of array {name!r} are "
                               "missing (an incomplete copy?); they would read as "
                               f"{array.fill_value}, so the image is refused")


class OmeZarrSource(ArraySource):
    """Level 0 of an OME-Zarr multiscale image."""

    def __init__(self, path: Path) -> None:
        meta, group = _multiscale(path)
        try:
            axes = meta["axes"]
            dataset, array = _full_resolution(group, meta["datasets"])
            scale = _scale(meta.get("coordinateTransformations", []), len(axes))
            level = _scale(dataset.get("coordinateTransformations", []), len(axes))
        except Exception as err:
            raise InputError(path, f"invalid OME-Zarr metadata ({type(err).__name__}: {err})"
                             ) from None
        check_complete(path, array, dataset["path"])
        check_fits_memory(path, math.prod(array.chunks) * array.dtype.itemsize,
                          f"each chunk ({' × '.join(map(str, array.chunks))} values)")
        axes = [a if isinstance(a, dict) else {"name": str(a)} for a in axes]  # 0.3: names only
        names = [a["name"].lower() for a in axes]
        letters = "".join("C" if a.get("type", AXIS_TYPES.get(n)) == "channel" else n.upper()
                          for n, a in zip(names, axes, strict=True))
        pixel_size = {}
        for name, axis, s0, s1 in zip(names, axes, scale, level, strict=True):
            size = micrometers(s0 * s1, axis.get("unit")) if name in ("z", "y", "x") else None
            if size is not None:
                pixel_size[name] = size
        super().__init__(path, array, letters, pixel_size)


class OmeZarrReader:
    """Reads OME-Zarr images (.zarr / .ome.zarr folders; 0.5, and 0.4 through zarr's v2 support)."""

    name = "ome-zarr"
    suffixes = (".ome.zarr", ".zarr")

    def open(self, path: Path) -> OmeZarrSource:
        return OmeZarrSource(path)


def write_by_chunk(array: zarr.Array, region: tuple[slice, ...], data: np.ndarray) -> None:
    """``array[region] = data``, one chunk (or shard) at a time.

    zarr writes the chunks of one assignment concurrently, and when one fails (a full disk) it
    returns while the others still run: they would recreate folders of a store already removed
    (a partial output, a scratch store left behind). One at a time, a failure ends all writing.
    """
    units = write_unit(array)
    bounds = [part.indices(n)[:2] for part, n in zip(region, array.shape, strict=True)]
    cells = [range(start // size, -(-stop // size)) if stop > start else range(0)
             for (start, stop), size in zip(bounds, units, strict=True)]
    for cell in itertools.product(*cells):
        target = tuple(slice(max(start, k * size), min(stop, (k + 1) * size)) for k, size,
                       (start, stop) in zip(cell, units, bounds, strict=True))
        array[target] = data[tuple(slice(t.start - start, t.stop - start)
                                   for t, (start, _) in zip(target, bounds, strict=True))]


def write_unit(array: zarr.Array) -> tuple[int, ...]:
    """The shape one writer must write whole: a shard where the array is sharded, else a chunk."""
    return tuple(array.shards or array.chunks)


def pool_in_store(store: str, level: int, block: Block, unit: int) -> None:
    """Build one unit of ``level`` from level − 1 of the store at ``store`` (a task of its own
    on a cluster: blocks never share a unit)."""
    group = zarr.open_group(store, mode="r+")
    pool_block(group[str(level - 1)], group[str(level)], block, unit)


class OmeZarrSink:
    """Level 0 is written chunk by chunk; coarser levels are built from it on commit.

    ``shard``: chunks per shard side (zarr v3 sharding: few large files of many chunks, for
    object stores and big slides); ``partial``: a fixed hidden path to write to, reopened as it
    is if present (resumable jobs) — by default a new temporary sibling.
    """

    def __init__(self, path: Path, info: ImageInfo, chunk: int, shard: int | None = None,
                 partial: Path | None = None) -> None:
        self.path, self.info, self.chunk, self.shard = path, info, chunk, shard
        self.partial = partial or temporary_sibling(path)
        self.unit = chunk * (shard or 1)
        self.names = ["c", *info.spatial_axes]
        resuming = self.partial.exists()
        try:
            if resuming:
                self.group = zarr.open_group(str(self.partial), mode="r+")
            else:
                self.group = zarr.create_group(str(self.partial), zarr_format=3)
                self._create_level(0, info.shape)
            self._level0 = self.level(0)
        except BaseException:  # a disk without room even for the metadata: nothing stays
            if not resuming:
                remove(self.partial)
            raise

    def level(self, level: int) -> zarr.Array:
        """The array of pyramid level ``level`` (0: full resolution)."""
        return _array(self.group, str(level))

    def _create_level(self, level: int, shape: tuple[int, ...]) -> zarr.Array:
        lead = (shape[0], *([1] if len(shape) == 4 else []))
        chunks = (*lead, min(self.chunk, shape[-2]), min(self.chunk, shape[-1]))
        shards = None if self.shard is None else (
            *lead, *(math.ceil(min(self.unit, n) / c) * c for n, c in zip(shape[-2:],
                                                                          chunks[-2:],
                                                                          strict=True)))
        return self.group.create_array(str(level), shape=shape, dtype=self.info.dtype,
                                       chunks=chunks, shards=shards, fill_value=0,
                                       dimension_names=self.names, overwrite=True,
                                       config={"write_empty_chunks": True})  # see check_complete

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        write_by_chunk(self._level0, (slice(None), *region), data)

    def pyramid(self, run: Callable[[list[tuple[int, Block]]], None] | None = None) -> int:
        """Write levels 1, 2, … until the image fits one unit; returns the number of levels.

        ``run`` gets each level's blocks (pooled independently, e.g. as cluster tasks);
        by default they are pooled here, one after the other."""
        shapes = level_shapes(self.info.shape, self.unit)
        for level in range(1, len(shapes)):
            self._create_level(level, shapes[level])
            jobs = [(level, block) for block in blocks(shapes[level - 1], self.unit)]
            if run is not None:
                run(jobs)
                continue
            for _, block in jobs:
                pool_block(self.level(level - 1), self.level(level), block, self.unit)
        return len(shapes)

    def _attributes(self, levels: int) -> dict[str, Any]:
        size, _ = usable(self.info.pixel_size)  # an ImageInfo made by hand is not checked
        axes = []
        for name in self.names:
            axis = {"name": name, "type": AXIS_TYPES[name]}
            if name in size:
                axis["unit"] = "micrometer"
            axes.append(axis)
        datasets = []
        for level in range(levels):
            scale, translation = placement(level, self.names, size)
            transforms = [{"type": "scale", "scale": scale}]
            if level:
                transforms.append({"type": "translation", "translation": translation})
            datasets.append({"path": str(level), "coordinateTransformations": transforms})
        multiscale = {"name": self.path.name, "axes": axes, "datasets": datasets, "type": "mean"}
        return {"ome": {"version": OME_VERSION, "multiscales": [multiscale],
                        "omero": self._omero(levels)}}

    def _omero(self, levels: int) -> dict[str, Any]:
        """Channel colours and contrast limits (from the coarsest level; a volume's middle
        plane), so viewers show RGB as colour and 16-bit images with a useful contrast."""
        coarsest = self.level(levels - 1)
        middle = (coarsest.shape[1] // 2,) if len(coarsest.shape) == 4 else ()
        sample = np.asarray(coarsest[(slice(None), *middle)])
        channels = [{"label": "RGB"[i] if is_rgb(self.info) else f"channel {i}",
                     "color": colour, "window": window, "active": True}
                    for i, (colour, window) in enumerate(zip(
                        colours(self.info), windows(self.info, sample), strict=True))]
        rdefs: dict[str, Any] = {"model": "color" if self.info.channels > 1 else "greyscale"}
        if middle:
            rdefs["defaultZ"] = middle[0]
        return {"channels": channels, "rdefs": rdefs}

    def finish(self, run: Callable[[list[tuple[int, Block]]], None] | None = None) -> None:
        """Build the pyramid and write the metadata (the store is then complete, not moved)."""
        self.group.update_attributes(self._attributes(self.pyramid(run)))

    def commit(self, replace: bool = False) -> None:
        self.finish()
        commit_output(self.partial, self.path, replace, "ome-zarr")

    def abort(self) -> None:
        remove(self.partial)


class OmeZarrWriter:
    """Writes OME-Zarr 0.5 with chunks of ``chunk`` pixels in y and x (one z plane deep)."""

    name = "ome-zarr"
    suffixes = (".ome.zarr", ".zarr")

    def create(self, path: Path, info: ImageInfo, chunk: int = 512,
               shard: int | None = None) -> OmeZarrSink:
        try:
            return OmeZarrSink(path, info, chunk, shard)
        except OSError as err:
            raise DiskError.refused(err, path, "cannot create output") from None
