"""Assertions, builders and real-process helpers shared by the reliability tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from helpers import blobs

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.domain import Domain, Normalisation
from utom_core.io import ImageInfo, writer_for
from utom_core.plugins import get_registry
from utom_core.task import Slicing

CLI = [sys.executable, "-c", "from utom_core.cli import main; main()"]
"""``utom`` in a fresh interpreter (for signals and for what only a real process shows)."""
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
"""Environment for those processes (see conftest.one_thread)."""
TINY = ("--budget", "smoke", "--set", "sample_pixels=5000", "--set", "n_blocks=1",
        "--set", "d_layers=2", "--set", "preview_every=1000")
"""Smallest training that still runs every part of the loop."""


def one_line_error(result, *needles: str) -> str:
    """A failed command: non-zero exit, no traceback, exactly one non-empty line on stderr
    (``error: …``) that mentions every needle (case-insensitive)."""
    assert result.code != 0, f"expected a failure, got exit 0\n{result.err}"
    assert "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.err}"
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` (hidden ones included) → content hash or "dir"."""
    state: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted([root, *root.rglob("*")]):
            key = str(path)
            state[key] = ("dir" if path.is_dir()
                          else hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders (``.x.partial``, ``.x.tmp``) anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*")
                  if p.name.endswith((".partial", ".tmp")))


def blob_image(rng: np.random.Generator, noise: float, size: int = 96) -> np.ndarray:
    image = 1000 + 20000 * blobs(rng, size) + rng.normal(0, noise or 1e-9, (size, size))
    return image.clip(0, 65535).astype(np.uint16)


def save_model(path: Path, domain_a: Domain, domain_b: Domain, task: str,
               slicing: Slicing = Slicing.xy) -> Path:
    """A run directory holding a small random model (no training: prediction tests need only
    its shape), saved the way training saves one."""
    cfg = TrainConfig(ngf=4, n_blocks=1)
    torch.manual_seed(0)
    g_ab = get_registry().build_generator(cfg, domain_a.channels, domain_b.channels)
    g_ba = get_registry().build_generator(cfg, domain_b.channels, domain_a.channels)
    meta = trained.RunMeta(
        task=task, domain_a=domain_a, domain_b=domain_b, slicing=slicing, images_per_epoch=1,
        normalisation_a=Normalisation(low=(100.0,) * domain_a.channels,
                                      high=(20000.0,) * domain_a.channels, dtype=domain_a.dtype),
        normalisation_b=Normalisation(low=(100.0,) * domain_b.channels,
                                      high=(20000.0,) * domain_b.channels, dtype=domain_b.dtype),
        threshold_a=3000.0, threshold_b=3000.0)
    path.mkdir(parents=True, exist_ok=True)
    save_torch(dict(
        format=trained.MODEL_FORMAT, config=cfg.model_dump(mode="json"),
        meta=meta.model_dump(mode="json"), g_ab=g_ab.state_dict(), g_ba=g_ba.state_dict(),
        ema_ab=g_ab.state_dict(), ema_ba=g_ba.state_dict(), iteration=1), path / trained.MODEL_FILE)
    return path


def write_zarr(path: Path, data: np.ndarray, chunk: int = 16) -> Path:
    """An OME-Zarr written by utom's own writer (every chunk stored)."""
    if path.exists():
        shutil.rmtree(path)
    sink = writer_for(path).create(path, ImageInfo(data.shape, data.dtype), chunk=chunk)
    sink.write(tuple(slice(0, n) for n in data.shape[1:]), data)
    sink.commit()
    return path


def chunk_files(store: Path, array: str = "0") -> list[Path]:
    return sorted(p for p in (store / array).rglob("*") if p.is_file() and p.name != "zarr.json")


@dataclass(frozen=True)
class Data:
    """Good inputs shared by every test of a session (never modified: tests check that)."""

    root: Path
    a: tuple[Path, ...]
    b: tuple[Path, ...]
    model: Path
    """denoise (1 → 1 channel, uint16, XY planes)."""
    iso_model: Path
    """isotropic (XZ/YZ planes)."""
    volume: Path
    """uint16 ZYX, 3 × 40 × 40."""


def write_unpaired(root: Path, rng: np.random.Generator) -> dict[str, list[Path]]:
    """Two noisy blob images for domain A and two clean ones for B: ``a0.tif`` … ``b1.tif``."""
    paths: dict[str, list[Path]] = {"a": [], "b": []}
    for domain, noise in (("a", 1500), ("b", 0)):
        for i in range(2):
            path = root / f"{domain}{i}.tif"
            tifffile.imwrite(path, blob_image(rng, noise))
            paths[domain].append(path)
    return paths


def make_data(root: Path) -> Data:
    from utom_tasks.denoise import TASK as DENOISE
    from utom_tasks.isotropic import TASK as ISOTROPIC

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = write_unpaired(root, rng)
    volume = root / "volume.tif"
    tifffile.imwrite(volume, np.stack([blob_image(rng, 500, 40) for _ in range(3)]),
                     imagej=True, metadata={"axes": "ZYX"})
    model = save_model(root / "model", DENOISE.domain_a, DENOISE.domain_b, "denoise")
    iso = save_model(root / "iso_model", ISOTROPIC.domain_a, ISOTROPIC.domain_b, "isotropic",
                     Slicing.xz_yz)
    return Data(root, tuple(paths["a"]), tuple(paths["b"]), model, iso, volume)


# real processes
def ctrl_c_reaches_it() -> None:
    """A child's ``preexec_fn``: SIGINT back to its default, so that Python in the child turns
    it into KeyboardInterrupt as in a terminal. A test run started in the background by a
    shell (``… &``) ignores SIGINT, and a child would inherit that and finish its work."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(args: list, cwd: Path, cli: list[str] = CLI, **env: str) -> subprocess.Popen:
    """``utom ARGS`` in a fresh process, stdout and stderr to files in ``cwd``."""
    return subprocess.Popen(
        [*cli, *map(str, args)], cwd=cwd, env={**os.environ, **ONE_THREAD, **env},
        stdout=open(cwd / "stdout.txt", "wb"), stderr=open(cwd / "stderr.txt", "wb"),
        preexec_fn=ctrl_c_reaches_it)


def wait_for(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 90):
    """Poll until ``condition()`` is truthy; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            err = (Path(proc.args[0]).parent, proc.returncode)
            pytest.fail(f"process ended early ({err}) before the awaited state")
        time.sleep(0.02)
    pytest.fail("timed out waiting for the process")


def iterations_logged(run: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in
            (run / trained.LOG_FILE).read_text().splitlines()]
