"""Between napari layers and utom's canonical arrays, (C, [Z], Y, X).

Torch-free on purpose: napari imports the reader for every file dropped on it, so nothing
here may pull in torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from utom_core.errors import InputError
from utom_core.io.lazy import ArraySource

LayerData = tuple[Any, dict[str, Any], str]
"""What a napari reader returns per layer: (data, layer keyword arguments, layer type)."""
MICROMETER = "micrometer"
DISPLAY_PERCENTILES = (0.5, 99.8)
"""Contrast limits: robust percentiles, as utom's own previews use (a few hot pixels of a
16-bit image must not squash the rest to black)."""
SAMPLE_VALUES = 1 << 22
"""Values read at most to find contrast limits (strided: any image size costs the same)."""
FIDELITY_TINT, FIDELITY_OPACITY = (0.0, 200 / 255, 1.0), 0.7
"""A fidelity map over its prediction: transparent where trusted (0), cyan the more it is
doubted, 70 % opaque at 1, so the prediction shows through; the tint of the report's fidelity
panel (utom_core.evaluation.figures.fidelity; a test keeps them equal)."""
FIDELITY_COLOURS = {"name": "utom fidelity",
                    "colors": [[*FIDELITY_TINT, 0.0], [*FIDELITY_TINT, FIDELITY_OPACITY]]}


def _sample(array: Any) -> np.ndarray:
    """A strided subset of at most about ``SAMPLE_VALUES`` values (lazy arrays read only it)."""
    step = max(1, math.ceil(math.sqrt(math.prod(array.shape) / SAMPLE_VALUES)))
    lead = tuple(slice(None, None, max(1, math.ceil(n / 16))) for n in array.shape[:-2])
    return np.asarray(array[(*lead, slice(None, None, step), slice(None, None, step))])


def contrast_limits(array: Any) -> tuple[float, float]:
    """Robust display range of an image (of its coarsest level: cheap for any size)."""
    values = _sample(array).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, DISPLAY_PERCENTILES))
    return (low, high) if high > low else (low, low + 1.0)


def image_layers(levels: list[Any], name: str, axes: str, pixel_size: dict[str, float]
                 ) -> list[LayerData]:
    """Image layers of a (multiscale) canonical image: levels of (C, *axes) arrays, finest
    first. Three uint8 channels are shown as RGB, other channels as one layer each; the
    scale is the pixel size in micrometers where known."""
    meta: dict[str, Any] = {
        "scale": [pixel_size.get(a, 1.0) for a in axes],
        "units": [MICROMETER if a in pixel_size else "pixel" for a in axes],
        "axis_labels": tuple(axes), "multiscale": len(levels) > 1}
    channels, dtype = levels[0].shape[0], np.dtype(levels[0].dtype)

    def data(arrays: list[Any]) -> Any:
        return arrays if len(arrays) > 1 else arrays[0]

    if channels == 3 and dtype == np.uint8:
        rgb = [da.moveaxis(da.asarray(level), 0, -1) if not isinstance(level, np.ndarray)
               else np.moveaxis(level, 0, -1) for level in levels]
        return [(data(rgb), {"name": name, "rgb": True, **meta}, "image")]
    layers = []
    for c in range(channels):
        arrays = [level[c] for level in levels]
        layers.append((data(arrays), {
            "name": name if channels == 1 else f"{name} [{c}]",
            "contrast_limits": contrast_limits(arrays[-1]), **meta}, "image"))
    return layers


def fidelity_overlay(layer: LayerData, name: str, visible: bool) -> LayerData:
    """A fidelity map's image layer as an overlay on its prediction (the caller places it
    there): the map's fixed [0, 1] range, not percentiles, so the full tint always means 1."""
    data, meta, kind = layer
    return data, {**meta, "name": f"{name} fidelity", "colormap": FIDELITY_COLOURS,
                  "contrast_limits": (0.0, 1.0), "blending": "translucent",
                  "visible": visible}, kind


def pixel_size(layer: Any, axes: str) -> dict[str, float]:
    """Micrometers per pixel along ``axes`` (the layer's last axes) where its units are
    lengths; pixel units (napari's default) say nothing and are left out."""
    sizes = {}
    for axis, scale, unit in zip(axes, layer.scale[-len(axes):], layer.units[-len(axes):],
                                 strict=True):
        if unit.dimensionality == {"[length]": 1}:
            sizes[axis] = float((scale * unit).to(MICROMETER).magnitude)
    return sizes


def _channels(layer: Any, channels: int) -> int:
    """How many channels a layer holds, read as for a domain of ``channels``: RGB(A) layers
    their last axis, other 2D layers 1, and for a multi-channel domain the first axis of a
    larger layer."""
    data = layer.data[0] if layer.multiscale else layer.data
    if layer.rgb:
        return int(data.shape[-1])
    return 1 if data.ndim == 2 or channels == 1 else int(data.shape[0])


def layer_fits(layer: Any, channels: int) -> bool:
    """Whether a layer holds the channels of a domain of ``channels``."""
    return _channels(layer, channels) == channels


def layer_source(layer: Any, channels: int) -> ArraySource:
    """The image of a napari layer as a lazy utom ImageSource (finest level of a multiscale
    layer; dask-backed data is read region by region, never whole).

    Channels: RGB layers carry them last; a non-RGB layer holds one channel, or, for a
    multi-channel domain, its first axis does."""
    data = layer.data[0] if layer.multiscale else layer.data
    origin = Path(layer.name)  # what the layer list shows (a folder's layers share its path)
    found = _channels(layer, channels)
    if found != channels:  # said before the axes: a 2D image of the wrong kind is not 1D
        kind = ("an RGBA" if found == 4 else "an RGB") if layer.rgb else "a"
        raise InputError(origin, f"has {found} channel(s) ({kind} layer of shape "
                                 f"{tuple(data.shape)}); expected {channels}")
    split = 1 if layer.rgb else 0
    spatial = data.ndim - split - (1 if channels > 1 and not layer.rgb else 0)
    if spatial not in (2, 3):
        raise InputError(origin, f"layer has {spatial} image axes (shape {tuple(data.shape)}); "
                                 f"utom predicts 2D (YX) and 3D (ZYX) images of {channels} "
                                 "channel(s)")
    axes = "ZYX"[-spatial:]
    letters = axes + "C" if layer.rgb else ("C" + axes if channels > 1 else axes)
    return ArraySource(origin, data, letters, pixel_size(layer, axes.lower()))


class ArraySink:
    """An ImageSink into a canonical (C, …) NumPy or zarr array (nothing to commit)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.array[(slice(None), *region)] = data

    def commit(self, replace: bool = False) -> None:
        """Nothing to move into place: the array is the result."""

    def abort(self) -> None:
        """Nothing to remove: the array is dropped with the job."""


class _Canonical:
    """An ImageSource as a (C, …) array dask reads region by region (basic slices only)."""

    def __init__(self, source: ArraySource) -> None:
        self.source = source
        self.shape, self.dtype = source.info.shape, source.info.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        channels, *region = index
        return self.source.read(tuple(region))[channels]


def lazy(source: ArraySource, tile: int = 1024) -> da.Array:
    """``source`` as a dask array (C, …), read tile by tile as napari shows it (the source
    stays open for as long as the layer lives)."""
    shape = source.info.shape
    chunks = (shape[0], *(1,) * (len(shape) - 3), tile, tile)
    return da.from_array(_Canonical(source), chunks=chunks, fancy=False,
                         meta=np.empty((0,) * len(shape), source.info.dtype))
