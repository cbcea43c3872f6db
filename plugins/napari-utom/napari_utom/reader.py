"""napari reader for utom's outputs: OME-Zarr stores, OME-TIFF files, run directories and
``utom run`` output folders (napari.yaml offers it for ``*.ome.tif(f)`` files and folders).

napari asks the reader about every matching path, so ``get_reader`` only looks at names,
headers and metadata, and nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import dask.array as da
import tifffile
import zarr

from napari_utom.layers import LayerData, fidelity_overlay, image_layers, lazy
from napari_utom.runs import (
    FIDELITY,
    is_run_dir,
    is_run_output,
    previews,
    read_output,
    read_run,
)
from utom_core.errors import InputError
from utom_core.io.lazy import ArraySource
from utom_core.io.omezarr import OmeZarrSource, check_complete
from utom_core.io.tiff import TiffSource

Reader = Callable[[str | list[str]], list[LayerData]]
OME_TIFF = (".ome.tif", ".ome.tiff")


def _one(path: str | list[str]) -> Path | None:
    if isinstance(path, list | tuple):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def get_reader(path: str | list[str]) -> Reader | None:
    """The reader for one of utom's outputs; None for anything else (left to other readers)."""
    one = _one(path)
    if one is None:
        return None
    if one.is_dir():
        if is_run_output(one):
            return partial(read_output, open_image=open_image)
        if is_run_dir(one) and (previews(one) or any(one.glob("*curve*.png"))):
            return read_run
        return read_ome_zarr if is_ome_zarr(one) else None
    return read_ome_tiff if is_ome_tiff(one) else None


def is_ome_zarr(path: Path) -> bool:
    """A ``.zarr`` folder whose group metadata has OME multiscales (0.4 or 0.5)."""
    if not path.name.endswith(".zarr"):
        return False
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    except Exception:  # not a zarr group: another reader's business
        return False
    return "multiscales" in attrs.get("ome", attrs)


def is_ome_tiff(path: Path) -> bool:
    """An ``.ome.tif(f)`` file whose header holds OME metadata (only the header is read)."""
    if not path.name.lower().endswith(OME_TIFF):
        return False
    try:
        with tifffile.TiffFile(path) as tf:
            return bool(tf.is_ome)
    except Exception:  # not a TIFF: another reader's business
        return False


def _name(path: Path) -> str:
    name = path.name
    for suffix in (".zarr", *OME_TIFF, ".tif", ".tiff", ".ome"):
        name = name.removesuffix(suffix)
    return name


def read_ome_zarr(path: str | list[str], name: str | None = None) -> list[LayerData]:
    """A multiscale image layer (one per channel; RGB for 8-bit colour) scaled in micrometers.

    utom's own OME-Zarr reader checks level 0 (axes, pixel size, every chunk present); every
    other level is checked for missing chunks too, so an incomplete copy is refused rather
    than shown with holes when zooming out."""
    store = _one(path)
    assert store is not None
    source = OmeZarrSource(store)
    source.close()
    group = zarr.open_group(str(store), mode="r")
    attrs = group.attrs.asdict()
    multiscale = attrs.get("ome", attrs)["multiscales"][0]
    names = [a["name"].lower() if isinstance(a, dict) else str(a).lower()
             for a in multiscale["axes"]]
    arrays = [group[d["path"]] for d in multiscale["datasets"]]
    for dataset, array in zip(multiscale["datasets"], arrays, strict=True):
        check_complete(store, array, dataset["path"])
    levels = [_canonical(da.from_zarr(array), names) for array in arrays]
    axes = "".join(n for n in names if n != "c")
    return _shown(image_layers(levels, name or _name(store), axes, source.info.pixel_size))


def _canonical(array: da.Array, names: list[str]) -> da.Array:
    """Channels first (a store without a channel axis gets a channel of one)."""
    if "c" not in names:
        return array[None]
    return da.moveaxis(array, names.index("c"), 0)


def read_ome_tiff(path: str | list[str]) -> list[LayerData]:
    """An OME-TIFF as one multiscale layer (its SubIFD pyramid, as utom and QuPath write it)
    in micrometers, read tile by tile. utom's TIFF reader checks the file and reads level 0;
    the reduced levels are the same series' pyramid."""
    file = _one(path)
    assert file is not None
    source = TiffSource(file)
    levels = [lazy(source)]
    tf = tifffile.TiffFile(file)  # kept open by the lazy levels, as the layer lives
    series = tf.series[0]
    for k in range(1, len(series.levels)):
        level = ArraySource(file, zarr.open_array(series.aszarr(level=k), mode="r"),
                            series.axes, {})
        if level.info.shape[:-2] != source.info.shape[:-2]:
            raise InputError(file, f"pyramid level {k} {level.info.shape} does not match "
                                   f"the image {source.info.shape}")
        levels.append(lazy(level))
    axes = "zyx"[-(len(source.info.shape) - 1):]
    return _shown(image_layers(levels, _name(file), axes, source.info.pixel_size))


def _shown(layers: list[LayerData]) -> list[LayerData]:
    """A fidelity map (``STEM.fidelity.ome.zarr`` beside ``STEM.ome.zarr``, as ``utom predict
    --fidelity`` writes it) as the overlay it is, on its prediction's place; else as read."""
    return [fidelity_overlay(layer, layer[1]["name"].removesuffix(FIDELITY), visible=True)
            if layer[1]["name"].endswith(FIDELITY) else layer for layer in layers]


def open_image(path: Path) -> list[LayerData]:
    """A prediction of a ``utom run`` output (OME-Zarr, or TIFF: a plain one has one level)."""
    if path.is_dir():
        return read_ome_zarr(str(path)) if is_ome_zarr(path) else []
    return read_ome_tiff(str(path)) if path.name.lower().endswith((".tif", ".tiff")) else []
