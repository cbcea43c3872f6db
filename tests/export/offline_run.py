"""Running utom offline for the export tests, and the smoke run they share."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reliability.checks import CLI

OFFLINE = Path(__file__).parent / "offline"
"""Holds the sitecustomize that records and refuses every network access of a process."""


def offline_env(folder: Path) -> dict[str, str]:
    """Environment of a process that cannot reach the network and logs every attempt to
    ``folder / "network.log"`` (bioimageio's cache kept in ``folder`` too)."""
    path = os.pathsep.join(p for p in (str(OFFLINE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path,
            "UTOM_NETWORK_LOG": str(folder / "network.log"),
            "BIOIMAGEIO_CACHE_PATH": str(folder / "bioimageio-cache")}


def network_attempts(folder: Path) -> list[str]:
    log = folder / "network.log"
    return log.read_text().splitlines() if log.exists() else []


def run_offline(folder: Path, *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """``utom ARGS…`` in a fresh, offline interpreter."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          env=offline_env(folder), timeout=timeout)


@dataclass(frozen=True)
class Smoke:
    root: Path
    a: tuple[Path, ...]
    b: tuple[Path, ...]
    run: Path
    """A TINY denoise run trained by ``utom train``."""
    package: Path
    """Its zoo package, exported by ``utom export`` in an offline process."""
