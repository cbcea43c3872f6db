"""Shared fixtures: CLI runner with captured output, fake installed plugins, tiny images."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import blobs

from utom_core import plugins
from utom_core.cli import main

pytest_plugins = ["reliability.disks", "methods.toy_method"]
"""Fixtures of their own modules: ``disk`` (a real tmpfs), ``toy_method`` (a plugin's method)."""

# Tiny test networks run fastest on one thread, and a second thread spin-waits badly whenever
# the machine's other core is busy (7x slower measured on 2 cores); subprocesses inherit this.
# Under pytest-xdist (the README's `-n 2`) every worker imports this file: one thread each.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the tests marked ``slow`` first: the scheduler hands each worker its
    next test when it is nearly idle, so the long ones (a minute of ``utom bench``) start early
    and the workers finish together. Workers collect in the same order, as xdist requires."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys) -> Callable[..., CliResult]:
    """Run ``utom ARGS…`` in-process and return exit code, stdout and stderr."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def fresh_registry():
    """The commands' registry built from the environment as it is during the test (a test
    that installs or disables plugins), and forgotten after it."""
    plugins.reset_registry()
    yield
    plugins.reset_registry()


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, fresh_registry) -> Callable[[str, str, str], Path]:
    """Fake-install a distribution: a module plus a ``*.dist-info`` with a ``utom`` entry point."""

    def install(dist: str, module: str, source: str, version: str = "1.0") -> Path:
        root = tmp_path / "site"
        root.mkdir(exist_ok=True)
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[utom]\n{module} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.delitem(sys.modules, module, raising=False)
        return root

    return install


@pytest.fixture
def blob_tiffs(tmp_path):
    """Two unpaired uint16 images per domain: noisy blobs (A) and clean blobs (B)."""
    return write_blob_tiffs(tmp_path)


def write_blob_tiffs(folder: Path) -> dict[str, list[Path]]:
    """``blob_tiffs`` written to ``folder`` (for fixtures of wider scope)."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    paths: dict[str, list[Path]] = {"a": [], "b": []}
    for domain, noise in (("a", 1500), ("b", 0)):
        for i in range(2):
            image = 1000 + 20000 * blobs(rng) + rng.normal(0, noise or 1e-9, (96, 96))
            path = folder / f"{domain}{i}.tif"
            tifffile.imwrite(path, image.clip(0, 65535).astype("uint16"))
            paths[domain].append(path)
    return paths
