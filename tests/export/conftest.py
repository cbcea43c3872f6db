"""Fixtures of the export tests: a smoke run trained for real, exported once, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from export.offline_run import Smoke, run_offline
from reliability.checks import TINY, blob_image


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Smoke:
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(3)
    paths: dict[str, list[Path]] = {"a": [], "b": []}
    for domain, noise in (("a", 1500), ("b", 0)):
        for i in range(2):
            path = root / f"{domain}{i}.tif"
            tifffile.imwrite(path, blob_image(rng, noise))
            paths[domain].append(path)
    run = root / "run"
    trained = run_offline(root, "train", "denoise", "--a", paths["a"][0], "--a", paths["a"][1],
                          "--b", paths["b"][0], "--b", paths["b"][1], "--out", run, *TINY)
    assert trained.returncode == 0, trained.stderr
    package = root / "denoise.zip"
    exported = run_offline(root, "export", run, "--bioimageio", package, "--author",
                           "Test Author")
    assert exported.returncode == 0, exported.stderr
    return Smoke(root, tuple(paths["a"]), tuple(paths["b"]), run, package)
