"""The tasks of prediction on a cluster (``utom_core.inference.dask``), as the workers run them.

A plane is tiled exactly as one process tiles it (``PlanePredictor.grid``), in the same batches
of tiles, with the normalisation statistics the client sampled once for the plane. A *tile
task* predicts one batch and returns each tile's weighted contribution (prediction × stitching
weight, cut to where the weight is not zero); a *unit task* adds the contributions falling on
one write unit of the output (a chunk, or a shard) in the order the streaming ``Stitcher``
adds them, maps the sum to raw units and writes the unit whole. The same operations in the
same order on the same values: the output is bit-identical to one process's, and no two tasks
ever write the same chunk. A unit task then records a checksum of the file it wrote, which a
resumed job verifies before it skips the unit.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr

from utom_core.inference.planes import PlanePredictor, Reader, TileOptions, TileRunner
from utom_core.inference.tiling import TileGrid
from utom_core.io import FormatTable, ImageSource, open_image
from utom_core.io.atomic import write_json
from utom_core.io.omezarr import write_unit
from utom_core.trained import Direction, TrainedModel

MARKS = ".utom-units"
"""Folder in a job's store with one checksum file per unit written (removed on commit)."""
Statistics = tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]
"""(mean, var) of every InstanceNorm layer, in module order, for each test-time view."""
Contribution = tuple[int, int, np.ndarray]
"""(first row, first column) in the plane and the weighted prediction (C, rows, columns)."""
Unit = tuple[int | None, int, int]
"""A write unit: its plane (None in 2D) and its index along y and x."""


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the generator itself (once: see ``worker_model``)."""

    path: str
    direction: Direction
    ema: bool
    device: str
    options: TileOptions
    load: WorkerLoader
    """Loads the model and the formats in a worker process: a module-level function of the
    composition root (a worker is a process of its own, with its own registry), sent to the
    workers by reference."""
    white_balance: bool = True
    """Whether the outputs take the model's white balance (``utom predict
    --no-white-balance``: not)."""


WorkerLoader = Callable[[ModelSpec], tuple[TrainedModel, FormatTable]]


@dataclass(frozen=True)
class PlaneJob:
    """One 2D plane of one input: a z index of a volume, or None."""

    image: str
    plane: int | None
    shape: tuple[int, int]
    statistics: Statistics | None = field(default=None, compare=False)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc ``mallopt`` parameters."""


def keep_freed_memory() -> None:
    """Let glibc reuse freed activations instead of returning them to the system.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which turns off glibc's
    adaptive thresholds: every tile's activations are then mapped and unmapped again, and the
    page faults cost as much system time as the network's arithmetic (measured: 15 s of
    system time for 12 s of tiles). These are the values the adaptive thresholds reach in one
    process."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 * 2**20)


@functools.lru_cache(maxsize=2)
def worker_model(spec: ModelSpec) -> tuple[TrainedModel, PlanePredictor, FormatTable]:
    """The generator, loaded once per worker process and kept for every later task, and the
    formats to read inputs with."""
    keep_freed_memory()
    model, formats = spec.load(spec)
    return model, PlanePredictor(model.generator, model.source_norm, spec.options), formats


def loads() -> int:
    """How many times this process loaded a generator (tests ask every worker)."""
    return worker_model.cache_info().misses


def plane_reader(source: ImageSource, plane: int | None) -> Reader:
    if plane is None:
        return lambda ys, xs: source.read((ys, xs))
    at = slice(plane, plane + 1)
    return lambda ys, xs: source.read((at, ys, xs))[:, 0]


def recorded_statistics(runner: TileRunner) -> Statistics | None:
    """Each view's statistics the runner holds frozen now (inside
    ``PlanePredictor.statistics``); None for a plane whose tiles use their own."""
    if runner.frozen is None:
        return None
    return tuple(tuple((mean.cpu().numpy(), var.cpu().numpy()) for mean, var in view)
                 for view in runner.frozen)


@contextlib.contextmanager
def frozen_at(runner: TileRunner, statistics: Statistics | None) -> Iterator[None]:
    """Freeze the runner at the statistics the client recorded, view by view."""
    device = runner.device
    try:
        if statistics is not None:
            runner.frozen = [[(torch.from_numpy(mean).to(device), torch.from_numpy(var).to(device))
                              for mean, var in view] for view in statistics]
        yield
    finally:
        runner.frozen = None
        for norm in runner.norms:
            norm.frozen = None


def extent(weights: np.ndarray, start: int, length: int) -> tuple[int, int]:
    """Where a tile's weights along one axis are not zero, in plane coordinates."""
    nonzero = np.flatnonzero(weights)
    if not len(nonzero):
        return start, start
    return start + int(nonzero[0]), min(start + int(nonzero[-1]) + 1, length)


def predict_tiles(spec: ModelSpec, job: PlaneJob, row: int, first: int) -> list[Contribution]:
    """Task: the contributions of one batch of tiles (``first``… of tile row ``row``)."""
    _, planes, formats = worker_model(spec)
    grid = planes.grid(job.shape)
    source = open_image(Path(job.image), formats=formats)
    try:
        with frozen_at(planes.runner, job.statistics):
            predictions = planes.predict_batch(plane_reader(source, job.plane), grid, row, first)
    finally:
        source.close()
    span_y = grid.rows[row]
    y0, y1 = extent(grid.row_weights[row], span_y.start, grid.shape[0])
    found = []
    for col, tile in enumerate(predictions, start=first):
        span_x = grid.cols[col]
        x0, x1 = extent(grid.col_weights[col], span_x.start, grid.shape[1])
        weighted = tile * grid.weight(row, col)
        found.append((y0, x0, weighted[:, y0 - span_y.start:y1 - span_y.start,
                                       x0 - span_x.start:x1 - span_x.start]))
    return found


def unit_region(array: zarr.Array, unit: Unit) -> tuple[slice, slice]:
    """The rows and columns of ``unit`` in its plane."""
    *_, uy, ux = write_unit(array)
    height, width = array.shape[-2:]
    _, iy, ix = unit
    return slice(iy * uy, min((iy + 1) * uy, height)), slice(ix * ux, min((ix + 1) * ux, width))


def units(array: zarr.Array) -> list[Unit]:
    """Every write unit of level 0, plane by plane, row-major."""
    *_, uy, ux = write_unit(array)
    planes: list[int | None] = list(range(array.shape[1])) if array.ndim == 4 else [None]
    return [(plane, iy, ix) for plane in planes
            for iy, ix in itertools.product(range(math.ceil(array.shape[-2] / uy)),
                                            range(math.ceil(array.shape[-1] / ux)))]


def batches_for(grid: TileGrid, batch: int, rows: slice, cols: slice) -> list[tuple[int, int]]:
    """The tile batches (row, first column) whose weights reach the region, row-major."""
    def reached(spans, weights, region: slice) -> list[int]:
        length = spans[-1].stop
        return [i for i, (s, w) in enumerate(zip(spans, weights, strict=True))
                if (e := extent(w, s.start, length))[0] < region.stop and e[1] > region.start]

    needed_cols = reached(grid.cols, grid.col_weights, cols)
    firsts = sorted({c // batch * batch for c in needed_cols})
    return [(r, first) for r in reached(grid.rows, grid.row_weights, rows) for first in firsts]


def write_unit_task(spec: ModelSpec, store: str, unit: Unit,
                    *batches: list[Contribution]) -> int:
    """Task: sum the contributions on ``unit`` (given in the Stitcher's order), write the unit
    whole to level 0 of ``store`` and record its checksum; returns its pixel count."""
    model, _, _ = worker_model(spec)
    array = zarr.open_array(str(Path(store) / "0"), mode="r+")
    rows, cols = unit_region(array, unit)
    total = np.zeros((array.shape[0], rows.stop - rows.start, cols.stop - cols.start),
                     np.float32)
    for y0, x0, data in itertools.chain.from_iterable(batches):
        ys = slice(max(rows.start, y0), min(rows.stop, y0 + data.shape[1]))
        xs = slice(max(cols.start, x0), min(cols.stop, x0 + data.shape[2]))
        if ys.start < ys.stop and xs.start < xs.stop:
            total[:, ys.start - rows.start:ys.stop - rows.start,
                  xs.start - cols.start:xs.stop - cols.start] += (
                data[:, ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0])
    raw = model.output_norm.invert(total)
    plane = unit[0]
    if plane is None:
        array[:, rows, cols] = raw
    else:
        array[:, plane:plane + 1, rows, cols] = raw[:, None]
    write_json(_mark(store, unit), {"sha256": _checksum(store, array, unit)})
    return raw.shape[1] * raw.shape[2]


def _mark(store: str, unit: Unit) -> Path:
    plane, iy, ix = unit
    return Path(store) / MARKS / f"{'' if plane is None else f'{plane}.'}{iy}.{ix}.json"


def _checksum(store: str, array: zarr.Array, unit: Unit) -> str:
    """SHA-256 of the file holding ``unit`` (a chunk or a shard) as stored."""
    plane, iy, ix = unit
    key = array.metadata.encode_chunk_key((0, *(() if plane is None else (plane,)), iy, ix))
    return hashlib.sha256((Path(store) / "0" / key).read_bytes()).hexdigest()


def is_written(store: str, array: zarr.Array, unit: Unit) -> bool:
    """Whether ``unit`` was written by an earlier run and its file is still what it wrote."""
    try:
        recorded = json.loads(_mark(store, unit).read_text())["sha256"]
        return recorded == _checksum(store, array, unit)
    except (OSError, ValueError, KeyError, TypeError):
        return False
