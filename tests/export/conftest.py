"""Fixtures of the export tests: a smoke run trained for real, exported once, offline."""

from __future__ import annotations

import numpy as np
import pytest
from export.offline_run import Smoke, run_offline
from reliability.checks import TINY, write_unpaired


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Smoke:
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(3)
    paths = write_unpaired(root, rng)
    run = root / "run"
    trained = run_offline(root, "train", "denoise", "--a", paths["a"][0], "--a", paths["a"][1],
                          "--b", paths["b"][0], "--b", paths["b"][1], "--out", run, *TINY)
    assert trained.returncode == 0, trained.stderr
    package = root / "denoise.zip"
    exported = run_offline(root, "export", run, "--bioimageio", package, "--author",
                           "Test Author")
    assert exported.returncode == 0, exported.stderr
    return Smoke(root, tuple(paths["a"]), tuple(paths["b"]), run, package)
