"""What napari shows of a run directory and of a ``utom run`` output folder.

Training previews are decoded lazily, one file when napari shows it, and shrunk to at most
``PREVIEW_SIDE`` pixels per side, so a run with huge preview PNGs costs one decoded file of
memory, not all of them. Panels are laid side by side (never on top of each other), and a
text layer names the iteration of the preview shown.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from PIL import Image

from napari_utom.layers import LayerData
from utom_core.io import image_stem

RUN_FILES = ("model.pt", "run.json")
"""What marks a run directory (utom_core.trained MODEL_FILE and META_FILE; importing that
module would import torch; a test keeps the two equal)."""
PREVIEW_DIR = "previews"
PREVIEW_NAME = re.compile(r"(a2b|b2a)_(\d+)\.png")
"""Training previews, ``previews/a2b_0000100.png`` (utom_core.run_folders' run layout)."""
CURVE_GLOB = "*curve*.png"
"""Learning curves at the top of a run directory (``val_curve.png`` with ``--val``)."""
OUTPUT_FORMAT, OUTPUT_MARKER = "utom-run-output/1", "utom.json"
RUN_SUBDIR, PREDICTION_DIR = "run", "predictions"
"""A ``utom run`` output folder (utom_core.run_folders; a test keeps them equal)."""
FIDELITY = ".fidelity"
"""Ends the stem of a fidelity map beside its prediction (utom_core.inference.fidelity's
SUFFIX, which imports torch; a test keeps them equal)."""
PREVIEW_SIDE = 2048
"""Previews are shown at most this many pixels per side (larger files are box-averaged down
by an integer factor as they are decoded)."""
GAP = 16
"""Pixels between panels laid side by side."""


def is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def is_run_output(path: Path) -> bool:
    try:
        marker = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == OUTPUT_FORMAT


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


def _factor(size: tuple[int, int]) -> int:
    return max(1, math.ceil(max(size) / PREVIEW_SIDE))


def _open(path: Path) -> Image.Image:
    """Pillow's decompression-bomb warning left out (its hard limit, an error, applies)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _decode(path: Path) -> np.ndarray:
    """The PNG as shown: RGB, reduced by ``_factor`` (only this file is held decoded)."""
    with _open(path) as image:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        factor = _factor(image.size)
        return np.asarray(rgb.reduce(factor) if factor > 1 else rgb)


def panel(path: Path) -> da.Array:
    """A preview PNG as a lazy (Y, X, 3) array: only the header is read until it is shown."""
    with _open(path) as image:
        width, height = image.size
    factor = _factor((width, height))
    shape = (math.ceil(height / factor), math.ceil(width / factor), 3)
    return da.from_delayed(dask.delayed(_decode)(path), shape, np.uint8)


def _iteration_text(name: str, iterations: list[int], x: float) -> LayerData:
    """Points, one per preview, each labelled with its iteration (shown with its slice)."""
    return (np.array([[i, -2, x] for i in range(len(iterations))], float), {
        "name": f"{name} iteration", "features": {"iteration": iterations},
        "text": {"string": "iteration {iteration}", "anchor": "upper_left", "size": 10,
                 "color": "white"},
        "size": 1, "face_color": "transparent", "border_width": 0,
        "out_of_slice_display": False, "axis_labels": ("preview", "y", "x")}, "points")


def read_run(path: str | list[str], last_only: bool = False) -> list[LayerData]:
    """A run's previews, one RGB layer per direction with a ``preview`` axis (panels of
    different sizes stay separate layers), and its learning curves, side by side; with
    ``last_only``, each direction's last preview alone (no axis to scroll)."""
    run = Path(path[0] if isinstance(path, list) else path)
    layers: list[LayerData] = []
    x = 0.0
    for direction, found in previews(run).items():
        files = found[-1:] if last_only else found
        panels = [panel(file) for file in files]
        iterations = [int(PREVIEW_NAME.fullmatch(f.name)[2]) for f in files]  # type: ignore[index]
        name = f"{run.name} {direction} previews"
        if len({p.shape for p in panels}) == 1 and not last_only:
            layers.append((da.stack(panels), {
                "name": name, "rgb": True, "translate": (0, 0, x),
                "axis_labels": ("preview", "y", "x"),
                "metadata": {"iterations": iterations}}, "image"))
            layers.append(_iteration_text(name, iterations, x))
            x += panels[0].shape[1] + GAP
            continue
        for array, file in zip(panels, files, strict=True):
            layers.append((array, {"name": f"{run.name} {file.stem}", "rgb": True,
                                   "translate": (0, x)}, "image"))
            x += array.shape[1] + GAP
    for file in curves(run):
        array = panel(file)
        layers.append((array, {"name": f"{run.name} {file.stem}", "rgb": True,
                               "translate": (0, x)}, "image"))
        x += array.shape[1] + GAP
    return layers


def _below(layers: list[LayerData], width: float, top: float, unit: str) -> list[LayerData]:
    """Panels hidden, placed from ``top`` down: below the predictions, in their ``unit``
    (panels are figures: their scale is layout only; one unit for all layers, or napari drops
    units and warns), as wide in all as the predictions, or as they are tall where that is
    more (a narrow prediction would leave the panels unreadably small)."""
    extent = max((meta["translate"][-1] + data.shape[-2]
                  for data, meta, kind in layers if kind == "image"), default=0)
    factor = max(width, top) / extent if extent and width else 1.0
    placed = []
    for data, meta, kind in layers:
        lead = [0.0] * (len(meta.get("axis_labels", "yx")) - 2)
        placed.append((data, {**meta, "visible": False, "units": unit,
                              "scale": [1.0] * len(lead) + [factor, factor],
                              "translate": [*lead, top, meta.get("translate", [0])[-1] * factor]},
                       kind))
    return placed


def predictions(folder: Path) -> list[tuple[Path, Path | None]]:
    """A run's predictions, each with its fidelity map where one was written beside it
    (``STEM.fidelity.tif`` for ``STEM.tif``: utom_core.inference.fidelity's naming)."""
    files = sorted(folder.glob("*"))
    maps = {image_stem(f): f for f in files if image_stem(f).endswith(FIDELITY)}
    return [(f, maps.get(image_stem(f) + FIDELITY)) for f in files
            if not image_stem(f).endswith(FIDELITY)]


def read_output(path: str | list[str], open_image: Any) -> list[LayerData]:
    """A ``utom run`` output folder: its predictions (each as ``open_image`` reads it) side by
    side, each with its fidelity map over it (hidden at first), and below them the run's last
    previews and curves, hidden too (the run directory itself shows every preview).
    Predictions come first: napari fits its view to the first layers it is given."""
    out = Path(path[0] if isinstance(path, list) else path)
    layers: list[LayerData] = []
    x = height = 0.0
    unit = "pixel"
    for file, fidelity in predictions(out / PREDICTION_DIR):
        found = open_image(file)
        overlays = [(data, {**meta, "visible": False}, kind)  # the reader's overlay, hidden
                    for data, meta, kind in (open_image(fidelity) if fidelity and found else [])]
        width = 0.0
        for data, meta, kind in found + overlays:  # side by side, each map on its prediction
            level = data[0] if isinstance(data, list) else data
            n = len(meta["scale"])
            layers.append((data, {**meta, "translate": [0.0] * (n - 1) + [x]}, kind))
            height = max(height, level.shape[n - 2] * meta["scale"][-2])
            width = max(width, level.shape[n - 1] * meta["scale"][-1])
            unit = meta["units"][-1]
        x += width * 1.05
    run = read_run(out / RUN_SUBDIR, last_only=True) if is_run_dir(out / RUN_SUBDIR) else []
    return layers + _below(run, x, height * 1.05, unit)
