"""The thread count: each source read from crafted cgroup files and environments, and which
wins (--threads > OMP_NUM_THREADS > SLURM > min(affinity, cgroup quota))."""

from __future__ import annotations

import pytest
import torch

from utom_core import threads
from utom_core.threads import Threads, affinity_cpus, cgroup_cpus, env_count, usable_threads


def _cgroup_v2(root, own="/job/step", limits=None):
    """A cgroup v2 tree with ``limits`` (folder relative to root: cpu.max text) and the
    /proc/self/cgroup line naming ``own``."""
    for folder, text in (limits or {}).items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text + "\n")
    proc = root.parent / "proc-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_a_v2_quota_is_read_as_cpus(tmp_path):
    root, proc = _cgroup_v2(tmp_path / "cg", limits={".": "200000 100000"})
    assert cgroup_cpus(root, proc) == 2.0


def test_the_smallest_quota_on_the_way_to_the_root_limits(tmp_path):
    root, proc = _cgroup_v2(tmp_path / "cg", limits={
        ".": "max 100000", "job": "400000 100000", "job/step": "150000 100000"})
    assert cgroup_cpus(root, proc) == 1.5


def test_no_quota_is_none(tmp_path):
    root, proc = _cgroup_v2(tmp_path / "cg", limits={".": "max 100000", "job": "max 100000"})
    assert cgroup_cpus(root, proc) is None
    assert cgroup_cpus(tmp_path / "missing", tmp_path / "missing-proc") is None


@pytest.mark.parametrize("quota", ["-1", "garbage"])
def test_a_v1_quota_and_its_absence(tmp_path, quota):
    v1 = tmp_path / "cg" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpus(tmp_path / "cg", tmp_path / "none") == 3.0
    (v1 / "cpu.cfs_quota_us").write_text(quota + "\n")  # -1: unlimited
    assert cgroup_cpus(tmp_path / "cg", tmp_path / "none") is None


def test_affinity_counts_the_cpus_allowed():
    assert affinity_cpus(lambda pid: {0, 3}) == 2
    assert affinity_cpus(lambda pid: (_ for _ in ()).throw(OSError("no"))) is None


@pytest.mark.parametrize(("text", "count"), [("4", 4), ("4,2", 4), ("0", None), ("x", None),
                                             ("", None)])
def test_environment_counts(text, count):
    assert env_count({"OMP_NUM_THREADS": text}, "OMP_NUM_THREADS") == count


def test_the_smaller_of_affinity_and_quota_wins():
    assert usable_threads(env={}, affinity=64, quota=2.0) == Threads(2, "cgroup quota: 2 CPUs")
    assert usable_threads(env={}, affinity=2, quota=8.0) == Threads(2, "CPU affinity: 2 CPUs")
    assert str(usable_threads(env={}, affinity=2, quota=8.0)) == "2 threads (CPU affinity: 2 CPUs)"
    assert usable_threads(env={}, affinity=64, quota=0.5).count == 1


def test_precedence_of_the_sources():
    env = {"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "5"}
    assert usable_threads(7, env, affinity=2, quota=1.0) == Threads(7, "--threads")
    assert usable_threads(None, env, 2, 1.0) == Threads(3, "OMP_NUM_THREADS=3")
    assert usable_threads(None, {"SLURM_CPUS_PER_TASK": "5"}, 2, 1.0) \
        == Threads(5, "SLURM_CPUS_PER_TASK=5")


def test_torchrun_processes_share_the_cpus():
    shared = usable_threads(None, {"LOCAL_WORLD_SIZE": "4"}, affinity=16, quota=None)
    assert shared == Threads(4, "CPU affinity: 16 CPUs, 4 processes")


def test_applying_sets_torch_and_is_remembered(monkeypatch):
    monkeypatch.setattr(threads, "_applied", [])
    before = torch.get_num_threads()
    try:
        threads.apply(Threads(1, "--threads"))
        assert torch.get_num_threads() == 1
        assert threads.applied() == Threads(1, "--threads")
    finally:
        torch.set_num_threads(before)
