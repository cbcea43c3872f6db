"""napari reader for utom's outputs: OME-Zarr predictions and run directories.

napari asks every reader about every path dropped on it, so ``get_reader`` only looks at
names and metadata, and nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from PIL import Image

from napari_utom.layers import LayerData, image_layers
from utom_core.io.omezarr import OmeZarrSource

RUN_FILES = ("model.pt", "run.json")
"""What marks a run directory (utom_core.trained MODEL_FILE and META_FILE; importing that
module would import torch; a test keeps the two equal)."""
PREVIEW_DIR = "previews"
PREVIEW_NAME = re.compile(r"(a2b|b2a)_(\d+)\.png")
"""Training previews, ``previews/a2b_0000100.png`` (utom_core.run_folders' run layout)."""
CURVE_GLOB = "*curve*.png"
"""A learning-curve plot at the top of a run directory, where one was saved."""

Reader = Callable[[str | list[str]], list[LayerData]]


def _one(path: str | list[str]) -> Path | None:
    if isinstance(path, list | tuple):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def get_reader(path: str | list[str]) -> Reader | None:
    """The reader for a utom OME-Zarr or run directory; None for anything else."""
    folder = _one(path)
    if folder is None or not folder.is_dir():
        return None
    if is_run_dir(folder) and (previews(folder) or curves(folder)):
        return read_run
    if is_ome_zarr(folder):
        return read_ome_zarr
    return None


def is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def is_ome_zarr(path: Path) -> bool:
    """A ``.zarr`` folder whose group metadata has OME multiscales (0.4 or 0.5)."""
    if not path.name.endswith(".zarr"):
        return False
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    except Exception:  # not a zarr group: another reader's business
        return False
    return "multiscales" in attrs.get("ome", attrs)


def read_ome_zarr(path: str | list[str], name: str | None = None) -> list[LayerData]:
    """A multiscale image layer (one per channel; RGB for 8-bit colour) scaled in micrometers,
    named ``name`` or after the store.

    utom's own OME-Zarr reader checks the store first (every chunk present, axes known) and
    gives the pixel size; the levels are then opened lazily with dask.
    """
    store = _one(path)
    source = OmeZarrSource(store)
    source.close()
    group = zarr.open_group(str(store), mode="r")
    attrs = group.attrs.asdict()
    multiscale = attrs.get("ome", attrs)["multiscales"][0]
    names = [a["name"].lower() if isinstance(a, dict) else str(a).lower()
             for a in multiscale["axes"]]
    levels = [_canonical(da.from_zarr(group[d["path"]]), names) for d in multiscale["datasets"]]
    axes = "".join(n for n in names if n != "c")
    name = name or store.name.removesuffix(".zarr").removesuffix(".ome")
    return image_layers(levels, name, axes, source.info.pixel_size)


def _canonical(array: da.Array, names: list[str]) -> da.Array:
    """Channels first (a store without a channel axis gets a channel of one)."""
    if "c" not in names:
        return array[None]
    return da.moveaxis(array, names.index("c"), 0)


def previews(run: Path) -> dict[str, list[Path]]:
    """Training previews by direction, in iteration order."""
    found: dict[str, list[tuple[int, Path]]] = {}
    for file in (run / PREVIEW_DIR).glob("*.png"):
        match = PREVIEW_NAME.fullmatch(file.name)
        if match:
            found.setdefault(match[1], []).append((int(match[2]), file))
    return {direction: [file for _, file in sorted(files)]
            for direction, files in sorted(found.items())}


def curves(run: Path) -> list[Path]:
    return sorted(run.glob(CURVE_GLOB))


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_run(path: str | list[str]) -> list[LayerData]:
    """A run's previews, one RGB layer per direction with an iteration axis (panels of
    different sizes stay separate layers), and its learning curve(s)."""
    run = _one(path)
    layers: list[LayerData] = []
    for direction, files in previews(run).items():
        panels = [_png(file) for file in files]
        if len({panel.shape for panel in panels}) == 1:
            layers.append((np.stack(panels), {
                "name": f"{run.name} {direction} previews", "rgb": True,
                "axis_labels": ("iteration", "y", "x"),
                "metadata": {"iterations": [int(PREVIEW_NAME.fullmatch(f.name)[2])
                                            for f in files]}}, "image"))
        else:
            layers += [(panel, {"name": f"{run.name} {file.stem}", "rgb": True}, "image")
                       for panel, file in zip(panels, files, strict=True)]
    layers += [(_png(file), {"name": f"{run.name} {file.stem}", "rgb": True}, "image")
               for file in curves(run)]
    return layers
