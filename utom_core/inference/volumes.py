"""Images of any dimension through the plane predictor: 2D, XY planes of volumes, or XZ and
YZ planes averaged (isotropic restoration, the XZ pass kept in a scratch OME-Zarr)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import zarr

from utom_core.domain import Normalisation
from utom_core.inference.planes import (
    Fidelity,
    PlanePredictor,
    Progress,
    TileOptions,
    check_channels,
)
from utom_core.io.base import ImageSink, ImageSource
from utom_core.io.omezarr import write_by_chunk
from utom_core.networks.base import Generator
from utom_core.task import Slicing


def predict_image(source: ImageSource, generator: Generator, source_norm: Normalisation,
                  target_norm: Normalisation, sink: ImageSink, options: TileOptions | None = None,
                  slicing: Slicing = Slicing.xy, progress: Progress | None = None) -> None:
    """Predict ``source`` into ``sink`` (not committed), streaming tile rows.

    The sink must have been created with ``output_info(source.info, generator.out_channels,
    target_norm.dtype)``; outputs are mapped back to raw units with ``target_norm``.
    """
    check_channels(source, generator)
    predict_checked(source, generator, source_norm, target_norm, sink, options, slicing,
                    progress)


def predict_checked(source: ImageSource, generator: Generator, source_norm: Normalisation,
                    target_norm: Normalisation, sink: ImageSink,
                    options: TileOptions | None = None, slicing: Slicing = Slicing.xy,
                    progress: Progress | None = None,
                    fidelity: tuple[Fidelity, ImageSink] | None = None) -> None:
    """``predict_image`` for a source already checked (``Predictor`` checks every input once,
    before any output exists). XZ/YZ planes are predicted under axis-keeping views only.
    ``fidelity``: its map is written to the sink given with it (2D images and XY planes)."""
    options = options or TileOptions()
    if slicing is Slicing.xz_yz and not options.axial:
        options = dataclasses.replace(options, axial=True)
    terms, extra = fidelity if fidelity is not None else (None, None)
    predictor = PlanePredictor(generator, source_norm, options, progress, terms)
    shape = source.info.shape
    if len(shape) == 3:
        predictor.plan(shape[1:])
        predictor(lambda ys, xs: source.read((ys, xs)), shape[1:],
                  lambda ys, xs, data: sink.write((ys, xs), target_norm.invert(data)),
                  None if extra is None else lambda ys, xs, data: extra.write((ys, xs), data))
    elif slicing is Slicing.xz_yz:
        if extra is not None:
            raise ValueError("fidelity maps of XZ/YZ planes are not supported")
        _predict_xz_yz(source, predictor, target_norm, sink)
    else:
        _predict_xy(source, predictor, target_norm, sink, extra)


def _predict_xy(source: ImageSource, predictor: PlanePredictor, target_norm: Normalisation,
                sink: ImageSink, extra: ImageSink | None = None) -> None:
    _, depth, height, width = source.info.shape
    predictor.plan((height, width), depth)
    for z in range(depth):
        plane = slice(z, z + 1)

        def read(ys: slice, xs: slice, p: slice = plane) -> np.ndarray:
            return source.read((p, ys, xs))[:, 0]

        def write(ys: slice, xs: slice, data: np.ndarray, p: slice = plane) -> None:
            sink.write((p, ys, xs), target_norm.invert(data)[:, None])

        def write_extra(ys: slice, xs: slice, data: np.ndarray, p: slice = plane) -> None:
            assert extra is not None
            extra.write((p, ys, xs), data[:, None])

        predictor(read, (height, width), write, None if extra is None else write_extra)


SLAB = 64
"""Planes per block of the XZ/YZ passes (and the scratch store's chunk width)."""


def _slabs(length: int) -> Iterator[slice]:
    for start in range(0, length, SLAB):
        yield slice(start, min(start + SLAB, length))


def _slab(source: ImageSource, predictor: PlanePredictor, axis: str, positions: slice
          ) -> np.ndarray:
    """Predictions of the XZ planes (``axis`` "y") or YZ planes ("x") at ``positions``.

    Returned in volume order: (C, Z, planes, X) for XZ, (C, Z, Y, planes) for YZ.
    """
    _, depth, height, width = source.info.shape
    shape = (depth, width if axis == "y" else height)
    planes = []
    for p in range(positions.start, positions.stop):
        at = slice(p, p + 1)
        if axis == "y":
            def read(zs: slice, cs: slice, at: slice = at) -> np.ndarray:
                return source.read((zs, at, cs))[:, :, 0]
        else:
            def read(zs: slice, cs: slice, at: slice = at) -> np.ndarray:
                return source.read((zs, cs, at))[..., 0]
        plane = np.zeros((predictor.generator.out_channels, *shape), np.float32)

        def write(rows: slice, cols: slice, data: np.ndarray, plane: np.ndarray = plane) -> None:
            plane[:, rows, cols] = data

        predictor(read, shape, write)
        planes.append(plane)
    return np.stack(planes, axis=2 if axis == "y" else 3)


def _predict_xz_yz(source: ImageSource, predictor: PlanePredictor, target_norm: Normalisation,
                   sink: ImageSink) -> None:
    """Average of predictions on XZ planes (one per y) and YZ planes (one per x).

    Pass 1 writes XZ results to a scratch zarr in slabs of y; pass 2 reads them back in slabs of
    x, adds the YZ results and writes the average. Memory: one slab, channels × Z × max(X, Y) ×
    ``SLAB`` floats.
    """
    _, depth, height, width = source.info.shape
    channels = predictor.generator.out_channels
    predictor.plan((depth, width), height)
    predictor.plan((depth, height), width)
    with tempfile.TemporaryDirectory(prefix="utom-xz-") as scratch:
        xz = zarr.create_array(str(Path(scratch) / "xz.zarr"), dtype="float32",
                               shape=(channels, depth, height, width),
                               chunks=(channels, depth, SLAB, SLAB))
        for ys in _slabs(height):
            write_by_chunk(xz, (slice(None), slice(None), ys, slice(None)),
                           _slab(source, predictor, "y", ys))
        for xs in _slabs(width):
            average = (np.asarray(xz[:, :, :, xs]) + _slab(source, predictor, "x", xs)) / 2
            sink.write((slice(0, depth), slice(0, height), xs), target_norm.invert(average))
