"""Headless napari: Qt's offscreen platform, napari's ``make_napari_viewer`` and pytest-qt's
``qtbot``. Test models and images come from the main suite's helpers (tests/reliability)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))

from reliability.checks import CLI, ONE_THREAD, blob_image, save_model  # noqa: E402


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A denoise run holding a small random generator (saved as training saves one)."""
    from utom_tasks.denoise import TASK

    return save_model(tmp_path_factory.mktemp("runs") / "denoise", TASK.domain_a,
                      TASK.domain_b, "denoise")


@pytest.fixture(scope="session")
def iso_run_dir(tmp_path_factory) -> Path:
    """An isotropic run: volumes are predicted as XZ and YZ planes, averaged."""
    from utom_core.task import Slicing
    from utom_tasks.isotropic import TASK

    return save_model(tmp_path_factory.mktemp("runs") / "isotropic", TASK.domain_a,
                      TASK.domain_b, "isotropic", Slicing.xz_yz)


@pytest.fixture
def image() -> np.ndarray:
    """uint16 fluorescence-like blobs, 96 × 96."""
    return blob_image(np.random.default_rng(1), 500)


def utom(*args: str) -> subprocess.CompletedProcess:
    """The ``utom`` command line in a fresh interpreter (what a user runs)."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True,
                            env={**os.environ, **ONE_THREAD}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result
