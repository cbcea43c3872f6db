"""How many threads torch may use: the CPUs this process may actually run on, not the node's.

torch starts one thread per core of the node; on a shared node whose job may use 2 of 64 cores
(CPU affinity, a cgroup quota) those threads fight over the few cores they get, spin-waiting,
and a step runs several times slower than on one thread. The sources, first that is set wins:
``--threads``, ``OMP_NUM_THREADS``, SLURM's ``SLURM_CPUS_PER_TASK``, else the smaller of the
CPU affinity and the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cfs_period_us``);
torchrun's processes on one node share them.
Every function takes its sources as parameters, so tests feed crafted files and environments.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class Threads:
    count: int
    source: str
    """Where the count came from, as the first progress line says it."""

    def __str__(self) -> str:
        return f"{self.count} thread{'s' if self.count != 1 else ''} ({self.source})"


def env_count(env: Mapping[str, str], name: str) -> int | None:
    """A positive count from an environment variable (OMP's "4,2" nesting: its first level);
    None where unset or not a positive number."""
    text = env.get(name, "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def affinity_cpus(getter: Callable[[int], set[int]] | None = None) -> int | None:
    """CPUs the scheduler may run this process on (None where the OS does not say)."""
    getter = getter or getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return len(getter(0)) or None
    except OSError:
        return None


def _quota(text: str) -> float | None:
    """CPUs of a quota and period (``max`` or a negative quota: none)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_groups(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup v2 folder and its ancestors up to ``root`` (a quota on any of them
    limits it); just ``root`` where /proc does not name one (inside a container's namespace)."""
    folders = [root]
    for line in (_read(proc_cgroup) or "").splitlines():
        if line.startswith("0::/"):
            relative = Path(line[4:])
            folders = [root / relative, *(root / p for p in relative.parents)]
    return folders


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs the cgroup quota allows (the smallest on the way to the root; None: no quota)."""
    quotas: list[float] = []
    for folder in _own_groups(root, proc_cgroup):
        quotas += [q for q in [_quota(_read(folder / "cpu.max") or "")] if q is not None]
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        quota, period = _read(v1 / "cpu.cfs_quota_us"), _read(v1 / "cpu.cfs_period_us")
        if quota and period:
            quotas += [q for q in [_quota(f"{quota} {period}")] if q is not None]
    return min(quotas) if quotas else None


def usable_cpus(env: Mapping[str, str] | None = None, affinity: int | None = None,
                quota: float | None = None) -> Threads:
    """The CPUs this process may use: SLURM's count for the task, else the smaller of
    ``affinity`` and the cgroup ``quota`` (both: this process's, read where not given)."""
    env = os.environ if env is None else env
    slurm = env_count(env, "SLURM_CPUS_PER_TASK")
    if slurm is not None:
        return Threads(slurm, f"SLURM_CPUS_PER_TASK={slurm}")
    affinity = affinity_cpus() if affinity is None else affinity
    quota = cgroup_cpus() if quota is None else quota
    limits = [(affinity, f"CPU affinity: {affinity} CPUs")] if affinity else []
    limits += [(max(1, int(quota)), f"cgroup quota: {quota:g} CPUs")] if quota else []
    if not limits:
        return Threads(os.cpu_count() or 1, "all CPUs")
    return Threads(*min(limits, key=lambda limit: limit[0]))


def usable_threads(explicit: int | None = None, env: Mapping[str, str] | None = None,
                   affinity: int | None = None, quota: float | None = None) -> Threads:
    """The thread count to use and why: ``explicit`` (--threads) > OMP_NUM_THREADS > the usable
    CPUs (``usable_cpus``), shared by torchrun's processes on this node (LOCAL_WORLD_SIZE)."""
    env = os.environ if env is None else env
    if explicit is not None:
        return Threads(explicit, "--threads")
    omp = env_count(env, "OMP_NUM_THREADS")
    if omp is not None:
        return Threads(omp, f"OMP_NUM_THREADS={omp}")
    cpus = usable_cpus(env, affinity, quota)
    processes = env_count(env, "LOCAL_WORLD_SIZE") or 1
    if processes == 1:
        return cpus
    return Threads(max(1, cpus.count // processes), f"{cpus.source}, {processes} processes")


_applied: list[Threads] = []
"""What ``apply`` set in this process (torch's thread pools are per process too)."""


def apply(threads: Threads) -> Threads:
    """Give torch ``threads``; its inter-op pool too, which torch lets be set only once and only
    before any parallel work (later: left as it is)."""
    torch.set_num_threads(threads.count)
    if not _applied:
        with contextlib.suppress(RuntimeError):  # parallel work began (e.g. in a test process)
            torch.set_num_interop_threads(threads.count)
    _applied.append(threads)
    return threads


def applied() -> Threads | None:
    """The threads this process was last given (None: torch's own default)."""
    return _applied[-1] if _applied else None


def cpu_count() -> int:
    """CPUs this process may use (what processes it starts share; not OMP_NUM_THREADS)."""
    return usable_cpus().count
