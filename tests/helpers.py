"""Test data helpers shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "plugins" / "utom-example-task"
SHARED_DATA = REPO.parent / "shared" / "data"


def blobs(rng, size: int = 96, count: int = 12) -> np.ndarray:
    """Random Gaussian blobs in [0, ~1] on a zero background: simple fluorescence-like content."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for y, x in rng.uniform(0, size, (count, 2)):
        image += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 30)
    return image.clip(0, 1)
