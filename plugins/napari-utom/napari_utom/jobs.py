"""What the widget computes: content masks (saliency preview) and predictions of layers.

Plain functions without Qt, so they run in a worker thread and in tests alike. torch is
imported inside them: opening napari or the reader never loads it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from napari_utom.layers import ArraySink, LayerData, fidelity_overlay, image_layers
from napari_utom.reader import read_ome_zarr
from utom_core.errors import UtomError
from utom_core.io.base import ImageInfo, ImageSink, ImageSource
from utom_core.io.omezarr import OmeZarrWriter

PREVIEW_PIXELS = 1 << 24
"""Largest layer (all planes) a saliency preview is computed for at once (16 MP)."""
IN_MEMORY_BYTES = 1 << 30
"""Predictions up to this size are kept in memory; larger ones in a scratch zarr store."""


class Cancelled(Exception):
    """The user pressed Cancel; what was written so far is removed."""


def content_mask(source: ImageSource, domain: Any, normalisation: Any, threshold: float
                 ) -> np.ndarray:
    """Content pixels (1) of every plane, as uint8: ``Domain.content_map`` > 0.5, the map the
    saliency constraint L_sc uses in training and ``utom threshold --preview`` shows."""
    shape = source.info.shape
    pixels = int(np.prod(shape[1:], dtype=np.int64))
    if pixels > PREVIEW_PIXELS:
        raise UtomError(f"{source.path}: has {pixels / 1e6:.0f} MP; the saliency preview "
                        f"shows at most {PREVIEW_PIXELS / 1e6:.0f} MP (crop a region into a "
                        "layer of its own)")
    raw = source.read(tuple(slice(None) for _ in shape[1:]))
    if raw.ndim == 3:
        return (domain.content_map(raw, normalisation, threshold) > 0.5).astype(np.uint8)
    return np.stack([(domain.content_map(raw[:, z], normalisation, threshold) > 0.5)
                     for z in range(raw.shape[1])]).astype(np.uint8)


@dataclass(frozen=True)
class Job:
    """One prediction as the widget asks for it."""

    run: Path
    """A run directory (its last model) or a model file (``model_best.pt``)."""
    direction: str = "a2b"
    tile: int = 512
    views: int | None = None
    """Flips and rotations averaged; None: ``utom predict --views``'s default (read only when
    predicting, so that opening napari never loads torch)."""
    device: str = "auto"
    output: Path | None = None
    """An OME-Zarr to write as well (refused if something is there already)."""
    name: str = "prediction"
    """Name of the new layer."""
    fidelity: bool = False
    """Compute the fidelity map too, shown over the prediction (beside an OME-Zarr output:
    ``STEM.fidelity.ome.zarr``, as ``utom predict --fidelity`` writes it)."""


Progress = Callable[[int, int], None]
"""(tiles done so far, total tiles)."""


def _scratch(info: ImageInfo, chunk: int) -> Any:
    """Where a prediction's pixels go: memory, or for large outputs a zarr store in a
    temporary folder removed when napari exits."""
    if int(np.prod(info.shape, dtype=np.int64)) * info.dtype.itemsize <= IN_MEMORY_BYTES:
        return np.zeros(info.shape, info.dtype)
    folder = tempfile.mkdtemp(prefix="napari-utom-")
    atexit.register(shutil.rmtree, folder, True)
    chunks = (info.shape[0], *([1] if len(info.shape) == 4 else []),
              min(chunk, info.shape[-2]), min(chunk, info.shape[-1]))
    return zarr.create_array(str(Path(folder) / "prediction.zarr"), shape=info.shape,
                             dtype=info.dtype, chunks=chunks, fill_value=0)


def _check_output(output: Path) -> None:
    if not output.name.endswith(".zarr"):
        raise UtomError(f"{output}: an OME-Zarr output's name ends in .ome.zarr")
    if output.exists() or output.is_symlink():
        raise UtomError(f"{output}: already exists; choose another path")


def predict(source: ImageSource, job: Job, progress: Progress, cancel: threading.Event
            ) -> list[LayerData] | None:
    """Predict ``source`` as ``utom predict`` does at its defaults (the same ``Predictor``:
    ``--overlap auto``, batch by device), streamed tile row by tile row into memory (or a
    scratch store) and, if asked, an OME-Zarr; None if cancelled, which removes everything
    written. Layers come back as data for the main thread to add."""
    from utom_core.device import resolve_device
    from utom_core.inference import PredictOptions, Predictor
    from utom_core.inference.fidelity import fidelity_path
    from utom_core.plugins import get_registry
    from utom_core.trained import load_model

    maps = None if job.output is None or not job.fidelity else fidelity_path(job.output)
    for output in (job.output, maps):
        if output is not None:
            _check_output(output)
    registry = get_registry()  # napari is a composition root of its own
    device = resolve_device(job.device)
    model = load_model(job.run, job.direction, device=str(device),
                       build_generator=registry.build_generator, reverse=job.fidelity)
    options = PredictOptions(tile=job.tile, fidelity=job.fidelity)
    options = options if job.views is None else replace(options, views=job.views)
    predictor = Predictor(model, options, formats=registry.formats)
    made: dict[str, tuple[ImageInfo, Any]] = {}  # each output's info, and its array if kept

    def sink_to(output: Path | None, key: str) -> Callable[[ImageInfo], ImageSink]:
        def create(info: ImageInfo) -> ImageSink:
            if cancel.is_set():
                raise Cancelled
            if output is not None:
                made[key] = info, None
                return OmeZarrWriter().create(output, info, chunk=job.tile)
            made[key] = info, _scratch(info, job.tile)
            return ArraySink(made[key][1])
        return create

    done = 0

    def advance(tiles: int, total: int, pixels: int) -> None:
        nonlocal done
        done += tiles
        progress(done, total)
        if cancel.is_set():
            raise Cancelled

    try:
        predictor.predict(source, sink_to(job.output, "prediction"), advance,
                          create_fidelity=sink_to(maps, "fidelity") if job.fidelity else None)
    except Cancelled:
        return None
    layers = _layers(made, "prediction", job.output, job.name)
    if job.fidelity:
        layers += [fidelity_overlay(layer, job.name, visible=True)
                   for layer in _layers(made, "fidelity", maps, job.name)]
    return layers


def _layers(made: dict[str, tuple[ImageInfo, Any]], key: str, output: Path | None, name: str
            ) -> list[LayerData]:
    """The layers of one result: read back from its OME-Zarr, or its array in memory."""
    if output is not None:
        return read_ome_zarr(str(output), name)
    info, array = made[key]
    levels = [array if isinstance(array, np.ndarray) else da.from_zarr(array)]
    return image_layers(levels, name, info.spatial_axes, info.pixel_size)
