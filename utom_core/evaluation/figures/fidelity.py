"""The report's fidelity figure: prediction | fidelity map | the map laid over the prediction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from utom_core.evaluation.figures.image_previews import display_plane
from utom_core.evaluation.figures.panels import _stretch, save_panel
from utom_core.io import open_image, read_image

TINT = np.array([0, 200, 255], np.float32)
"""Cyan: stands out on grey fluorescence and on pink/purple stains alike."""
OPACITY = 0.7
"""Opacity of the tint where the fidelity is 1 (the prediction still shows through)."""
LARGEST = 16 * 2**20
"""Values of the largest prediction drawn (the figure reads it whole)."""


def _display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) raw → (H, W, 3) uint8, each channel stretched by its 0.5/99.5 percentiles."""
    channels = [_stretch(channel) for channel in image[:3]]
    rgb = np.stack(channels * 3 if len(channels) == 1 else channels[:2] + channels[:1]
                   if len(channels) == 2 else channels, axis=-1)
    return np.rint(rgb * 255).astype(np.uint8)


def fidelity_overlay(prediction: np.ndarray, fidelity: np.ndarray) -> np.ndarray:
    """The prediction ((H, W, 3) uint8) tinted in proportion to its fidelity ((H, W), 0…1)."""
    alpha = OPACITY * np.clip(fidelity, 0, 1)[..., None]
    return np.rint(prediction * (1 - alpha) + TINT * alpha).astype(np.uint8)


def save_fidelity_panel(prediction: Path, fidelity: Path, path: Path) -> bool:
    """The figure at ``path`` (False, nothing drawn, for predictions above ``LARGEST``)."""
    source = open_image(prediction)
    try:
        if math.prod(source.info.shape) > LARGEST:
            return False
    finally:
        source.close()
    shown = _display(display_plane(read_image(prediction)))
    doubt = display_plane(read_image(fidelity))[0]
    map_rgb = np.repeat(np.rint(np.clip(doubt, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)
    save_panel(path, [shown, map_rgb, fidelity_overlay(shown, doubt)],
               ["prediction", "fidelity: black trusted, white doubtful",
                "doubtful areas tinted cyan"])
    return True
