"""``utom train`` under torchrun: 2 real processes on gloo (CPU), as a user would start them.

Each rank's weights are hashed after every step by a test-only entry point (it wraps
``Trainer.step``; production code knows nothing of it), so the DDP invariant — identical
networks on every rank — is checked step by step, and interrupted jobs are compared bit for
bit with an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from reliability.checks import ONE_THREAD, TINY, Data, leftovers, one_line_error, snapshot, wait_for

from utom_core import trained

pytestmark = pytest.mark.slow

ITERATIONS = 8
SETTINGS = (*TINY, "--iterations", str(ITERATIONS), "--set", "checkpoint_every=2",
            "--set", "log_every=1")
NETWORKS = ("g_ab", "g_ba", "d_a", "d_b", "ema_ab", "ema_ba")
ENTRY = textwrap.dedent('''
    import hashlib, os, time
    from utom_core.training.trainer import Trainer

    step = Trainer.step

    def hashed(self):
        terms = step(self)
        if os.environ["NAN_RANK"] == os.environ["RANK"] and self.iteration == 3:
            terms = terms * float("nan")  # this rank's loss diverges at iteration 3
        digest = hashlib.sha256()
        for net in (*self.modules.values(), *self.emas.values()):
            for tensor in net.state_dict().values():
                digest.update(tensor.detach().cpu().numpy().tobytes())
        with open(os.path.join(os.environ["HASH_DIR"], f"rank{os.environ['RANK']}"), "a") as f:
            f.write(f"{self.iteration} {digest.hexdigest()}\\n")
        time.sleep(float(os.environ["STEP_SLEEP"]))
        return terms

    Trainer.step = hashed
    with open(os.path.join(os.environ["HASH_DIR"], f"pid{os.environ['RANK']}"), "w") as f:
        f.write(str(os.getpid()))
    from utom_core.cli import main
    main()
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Job:
    """One torchrun job: its run directory (alone in ``folder``) and its side files."""

    folder: Path
    side: Path

    @property
    def run(self) -> Path:
        return self.folder / "run"

    def start(self, *args: object, step_sleep: float = 0.0,
              nan_rank: int | None = None) -> subprocess.Popen:
        entry = self.side / "entry.py"
        entry.write_text(ENTRY)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                   "--master-port", str(free_port()), str(entry), *map(str, args)]
        env = {**os.environ, **ONE_THREAD, "HASH_DIR": str(self.side),
               "STEP_SLEEP": str(step_sleep), "NAN_RANK": str(nan_rank)}
        for name in ("rank0", "rank1"):  # a resumed job logs its own steps
            (self.side / name).unlink(missing_ok=True)
        return subprocess.Popen(command, cwd=self.folder, env=env, start_new_session=True,
                                stdout=open(self.side / "stdout", "wb"),
                                stderr=open(self.side / "stderr", "wb"))

    def finish(self, *args: object) -> str:
        proc = self.start(*args)
        assert proc.wait(300) == 0, self.stderr()
        return self.stderr()

    def stderr(self) -> str:
        return (self.side / "stderr").read_text()

    def hashes(self, rank: int) -> list[str]:
        path = self.side / f"rank{rank}"
        return path.read_text().splitlines() if path.exists() else []

    def pid(self, rank: int) -> int:
        return int((self.side / f"pid{rank}").read_text())


def new_job(root: Path) -> Job:
    job = Job(root / "job", root / "side")
    job.folder.mkdir(parents=True)
    job.side.mkdir()
    return job


def train_args(data: Data, run: Path) -> tuple:
    return ("train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", run, *SETTINGS)


def networks(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    state = torch.load(run / trained.CHECKPOINT_FILE, weights_only=True)
    return {name: state[name] for name in NETWORKS}


def assert_same_networks(a: dict, b: dict) -> None:
    for name in NETWORKS:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key}"


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / trained.LOG_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data: Data) -> Job:
    """An uninterrupted 2-rank job."""
    job = new_job(tmp_path_factory.mktemp("straight"))
    job.finish(*train_args(data, job.run))
    return job


def test_two_ranks_train_one_run_with_the_same_weights_after_every_step(straight: Job):
    assert sorted(os.listdir(straight.folder)) == ["run"]  # exactly one run directory
    assert leftovers(straight.run) == []
    assert straight.stderr().count(f"finished iteration {ITERATIONS}") == 1  # rank 0 alone
    steps = straight.hashes(0)
    assert [int(line.split()[0]) for line in steps] == list(range(1, ITERATIONS + 1))
    assert steps == straight.hashes(1)  # the DDP invariant, step by step
    assert len({line.split()[1] for line in steps}) == ITERATIONS  # and they did train
    state = torch.load(straight.run / trained.CHECKPOINT_FILE, weights_only=True)
    parts = state["ranks"]
    assert len(parts) == 2 and parts[0]["streams"] == parts[1]["streams"] == {"a": 8, "b": 8}
    assert parts[0]["rng"] != parts[1]["rng"]  # each rank its own pools' generator


def test_rho_and_lr_count_the_images_of_every_rank(straight: Job, cli, tmp_path, data: Data):
    single = tmp_path / "single"
    result = cli(*train_args(data, single), "--set", "batch_size=2")
    assert result.code == 0, result.err
    two_ranks, one_rank = log_rows(straight.run), log_rows(single)
    assert [(r["rho"], r["lr"]) for r in two_ranks] == [(r["rho"], r["lr"]) for r in one_rank]
    metas = [json.loads((run / trained.META_FILE).read_text()) for run in (straight.run, single)]
    assert metas[0]["images_per_epoch"] == metas[1]["images_per_epoch"] == 4  # 0.25·8·2
    assert torch.load(straight.run / trained.CHECKPOINT_FILE,
                      weights_only=True)["images_seen"] == 2 * ITERATIONS


def test_ctrl_c_stops_every_rank_at_one_iteration_and_resume_is_bit_exact(
        straight: Job, tmp_path, data: Data):
    job = new_job(tmp_path)
    proc = job.start(*train_args(data, job.run), step_sleep=0.4)
    try:
        wait_for(lambda: len(job.hashes(0)) >= 3, proc, timeout=240)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        proc.wait(120)
    finally:
        proc.kill()
    err = job.stderr()
    assert err.count("interrupted at iteration") == 1, err
    stopped = int(err.split("interrupted at iteration ")[1].split(";")[0])
    assert 3 <= stopped < ITERATIONS
    assert len(job.hashes(0)) == len(job.hashes(1)) == stopped
    assert torch.load(job.run / trained.CHECKPOINT_FILE, weights_only=True)["iteration"] == stopped

    job.finish("train", "denoise", "--resume", "--out", job.run)
    assert_same_networks(networks(job.run), networks(straight.run))
    assert [r["iteration"] for r in log_rows(job.run)] == list(range(1, ITERATIONS + 1))


def killed_mid_training(job: Job, data: Data, rank: int) -> list[str]:
    """SIGKILL to ``rank`` once the job has a checkpoint; the job's error lines (one)."""
    proc = job.start(*train_args(data, job.run), step_sleep=0.4)
    try:
        wait_for(lambda: (job.run / trained.CHECKPOINT_FILE).exists()
                 and len(job.hashes(rank)) >= 3, proc, timeout=240)
        os.kill(job.pid(rank), signal.SIGKILL)
        code = proc.wait(120)
    finally:
        proc.kill()
    errors = [line for line in job.stderr().splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1, job.stderr()
    return errors


def test_a_rank_that_dies_ends_the_job_in_one_line_and_the_checkpoint_resumes(
        straight: Job, tmp_path, data: Data):
    job = new_job(tmp_path)
    errors = killed_mid_training(job, data, 1)
    assert "another process of the job stopped" in errors[0] and "--resume" in errors[0]
    assert "utom_core" not in job.stderr()  # no traceback of ours (torchrun adds its report)

    job.finish("train", "denoise", "--resume", "--out", job.run)
    assert_same_networks(networks(job.run), networks(straight.run))


def test_when_rank_0_dies_another_rank_says_so_in_one_line(tmp_path, data: Data):
    """Rank 0 talks for the job; killed, it cannot: rank 1 says that rank 0 stopped."""
    job = new_job(tmp_path)
    errors = killed_mid_training(job, data, 0)
    assert errors[0].startswith("error: torchrun: rank 0 stopped"), job.stderr()
    assert "--resume" in errors[0]


def test_utom_run_trains_on_every_rank_and_rank_0_reports_once(tmp_path, data: Data):
    job = new_job(tmp_path)
    err = job.finish("run", "denoise", "--a", data.a[0], "--b", data.b[0], "--test", data.a[1],
                     "--out", job.run, *TINY, "--iterations", "4", "--set", "val_every=2")
    assert sorted(os.listdir(job.folder)) == ["run"]
    assert err.count("denoise [utom]:") == 1 and (job.run / "report.md").is_file()
    assert job.hashes(0) == job.hashes(1) and len(job.hashes(0)) == 4
    logged = (job.run / "run" / trained.VAL_LOG_FILE).read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in logged] == [2, 4]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_whose_loss_diverges_stops_every_rank_at_once(tmp_path, data: Data, rank):
    """NaN on one rank reaches the others' weights only at the next step: every rank stops at
    the same log write, and rank 0 alone says so in one line (no hang, no "rank stopped")."""
    job = new_job(tmp_path)
    proc = job.start(*train_args(data, job.run), nan_rank=rank)
    assert proc.wait(300) != 0
    errors = [line for line in job.stderr().splitlines() if line.startswith("error:")]
    where = "at iteration 3 (" if rank == 0 else "in another process of the job"
    assert len(errors) == 1 and errors[0].startswith(f"error: training diverged {where}"), (
        job.stderr())
    assert "stopped at iteration 3" in errors[0]
    assert [row["iteration"] for row in log_rows(job.run)] == [1, 2, 3]
    assert networks(job.run)["g_ab"]  # the checkpoint of iteration 2, finite
    assert all(torch.isfinite(t).all() for t in networks(job.run)["g_ab"].values())


def test_a_run_of_two_ranks_resumes_with_two_only(straight: Job, cli):
    before = snapshot(straight.run)
    result = cli("train", "denoise", "--resume", "--out", straight.run, "--iterations", "10")
    one_line_error(result, "trained by 2 process(es)", "--nproc-per-node")
    assert snapshot(straight.run) == before


def test_a_contrastive_method_keeps_every_rank_identical(tmp_path, data: Data):
    """fastcut reads G's encoder outside its DDP wrapper and runs its projection heads twice a
    step; the ranks (each with its own flips and patch positions) still hold one model."""
    job = new_job(tmp_path)
    job.finish(*train_args(data, job.run), "--method", "fastcut")
    steps = job.hashes(0)
    assert len(steps) == ITERATIONS and steps == job.hashes(1)
    assert len({line.split()[1] for line in steps}) == ITERATIONS
