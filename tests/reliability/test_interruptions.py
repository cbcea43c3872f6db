"""Interruptions lose at most the work since the last checkpoint, and never a finished file.

Real processes are killed here (SIGKILL cannot be caught: it is the power cut, the OOM killer,
``kill -9``); SIGINT/SIGTERM are sent both to real processes and in-process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from reliability.checks import (
    TINY,
    Data,
    iterations_logged,
    leftovers,
    snapshot,
    spawn,
    wait_for,
)

from utom_core import trained
from utom_core.io.atomic import TEMP_SUFFIX
from utom_core.training.trainer import Trainer

CHECKPOINT = trained.CHECKPOINT_FILE


STALLING_CLI = [sys.executable, "-c", """
import os, sys, time
real_replace = os.replace


def stalled(src, dst, *args, **kwargs):  # a checkpoint pauses between its write and rename
    if str(dst).endswith(".pt"):
        time.sleep(1.5)
    return real_replace(src, dst, *args, **kwargs)


os.replace = stalled
from utom_core.cli import main
main()
"""]
"""``utom`` in a fresh interpreter whose checkpoint writes stall before their rename."""


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(f".*{TEMP_SUFFIX}"))


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one_and_resume_finishes(
        tmp_path, data: Data, cli):
    run = tmp_path / "run"
    proc = spawn(["train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", run, *TINY,
                  "--iterations", "6", "--set", "checkpoint_every=2", "--set", "log_every=1"],
                 tmp_path, STALLING_CLI)
    checkpoint = run / CHECKPOINT
    try:
        wait_for(checkpoint.exists, proc)  # the first checkpoint (iteration 2) is in place
        # the second one is written to a temp file and stalls before its rename: kill it there
        stray = wait_for(lambda: temporaries(checkpoint.parent), proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
    assert [p.name for p in temporaries(checkpoint.parent)] == [p.name for p in stray]
    state = torch.load(checkpoint, weights_only=True)  # complete and safe to load
    assert state["iteration"] == 2
    assert torch.load(run / trained.MODEL_FILE, weights_only=True)["iteration"] == 2
    with open(run / trained.LOG_FILE, "a") as log:  # a row torn by the kill
        log.write('{"iteration": 5, "rho": 0.')

    result = cli("train", "denoise", "--resume", "--out", run)
    assert result.code == 0, result.err
    assert "finished iteration 6" in result.err
    assert torch.load(checkpoint, weights_only=True)["iteration"] == 6
    assert leftovers(run) == []  # the stray temp file was removed, never read
    assert iterations_logged(run) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path, data: Data):
    run = tmp_path / "run"
    proc = spawn(["train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", run, *TINY,
                  "--iterations", "5000", "--set", "checkpoint_every=100000",
                  "--set", "log_every=1"], tmp_path)
    try:
        wait_for(lambda: (run / trained.LOG_FILE).exists()
                 and len(iterations_logged(run)) >= 2, proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        proc.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert code == 130, err
    assert "Traceback" not in err
    stopped = int(err.split("interrupted at iteration ")[1].split(";")[0])
    assert 2 <= stopped < 5000
    assert torch.load(run / CHECKPOINT, weights_only=True)["iteration"] == stopped
    assert torch.load(run / trained.MODEL_FILE, weights_only=True)["iteration"] == stopped
    assert iterations_logged(run) == list(range(1, stopped + 1))
    assert leftovers(run) == []


def _signal_at(monkeypatch, iteration: int, *signals: int) -> None:
    """Send ``signals`` to this process right after training step ``iteration``."""
    step = Trainer.step

    def patched(self):
        terms = step(self)
        if self.iteration == iteration:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return terms

    monkeypatch.setattr(Trainer, "step", patched)


@pytest.fixture
def guarded_signals():
    """If utom failed to handle a signal, the test fails instead of pytest being killed."""
    def fail(signum, frame):
        raise AssertionError(f"signal {signum} reached the test's handler, not utom's")

    previous = {sig: signal.signal(sig, fail) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def test_sigterm_from_a_scheduler_checkpoints_like_ctrl_c(cli, tmp_path, data: Data,
                                                          monkeypatch, guarded_signals):
    _signal_at(monkeypatch, 3, signal.SIGTERM)
    run = tmp_path / "run"
    result = cli("train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", run, *TINY,
                 "--iterations", "50", "--set", "checkpoint_every=100")
    assert result.code == 130, result.err
    assert "interrupted at iteration 3" in result.err
    assert torch.load(run / CHECKPOINT, weights_only=True)["iteration"] == 3
    assert signal.getsignal(signal.SIGTERM).__name__ == "fail"  # handler restored


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(cli, tmp_path, data: Data,
                                                                     monkeypatch,
                                                                     guarded_signals):
    _signal_at(monkeypatch, 5, signal.SIGINT, signal.SIGINT)
    run = tmp_path / "run"
    result = cli("train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", run, *TINY,
                 "--iterations", "50", "--set", "checkpoint_every=2")
    assert result.code == 130
    assert "Traceback" not in result.err and result.err.rstrip().endswith("error: interrupted")
    assert torch.load(run / CHECKPOINT, weights_only=True)["iteration"] == 4
    assert leftovers(run) == []
    monkeypatch.undo()
    resumed = cli("train", "denoise", "--resume", "--out", run, "--iterations", "6")
    assert resumed.code == 0, resumed.err
    assert torch.load(run / CHECKPOINT, weights_only=True)["iteration"] == 6


@pytest.mark.slow
def test_sigkill_mid_prediction_leaves_the_old_output_untouched(tmp_path, data: Data, cli):
    image = tmp_path / "large.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 20000, (1536, 1536), np.uint16))
    out = tmp_path / "pred.tif"
    tifffile.imwrite(out, np.full((5, 5), 7, np.uint16))  # yesterday's result
    yesterday = out.read_bytes()
    before = snapshot(data.root)
    proc = spawn(["predict", data.model, image, "--out", out, "--overwrite", "--tile", "32",
                  "--norm", "tile"], tmp_path)
    try:
        partial = wait_for(lambda: list(tmp_path.glob(".pred.tif.*.partial")), proc)
        time.sleep(0.5)  # thousands of tiles to go: it is mid-way
        assert proc.poll() is None, "prediction finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert out.read_bytes() == yesterday
    assert partial[0].stat().st_size > 0  # what was killed lies beside it, hidden, never at it
    assert snapshot(data.root) == before

    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.random.default_rng(1).integers(0, 20000, (40, 40), np.uint16))
    result = cli("predict", data.model, small, "--out", out, "--overwrite")
    assert result.code == 0, result.err
    assert tifffile.imread(out).shape == (40, 40)


def test_ctrl_c_mid_prediction_removes_its_partial_output(cli, tmp_path, data: Data,
                                                           monkeypatch):
    from utom_core.io.tiff import TiffSink

    calls = []

    def write(self, region, block):
        calls.append(region)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(TiffSink, "write", write)
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 20000, (64, 200), np.uint16))
    result = cli("predict", data.model, image, "--out", tmp_path / "out.tif", "--tile", "32",
                 "--norm", "tile")
    assert result.code == 130
    assert [line for line in result.err.splitlines() if line.strip()] == ["error: interrupted"]
    assert not (tmp_path / "out.tif").exists()
    assert leftovers(tmp_path) == []


def _raising(error: BaseException):
    def command(*args, **kwargs):
        raise error
    return command


def test_an_interrupt_wrapped_by_python_is_still_an_interrupt(cli, monkeypatch):
    """A signal landing in a class body's ``__set_name__`` (a lazy import: PIL's GIF plugin on
    a first PNG save) reaches the command line as a RuntimeError caused by the interrupt: it
    ends like Ctrl-C; an error that merely happened while handling one stays a bug report."""
    from utom_core import cli as cli_module

    wrapped = RuntimeError("Error calling __set_name__ on 'cached_property' instance")
    wrapped.__cause__ = KeyboardInterrupt()
    monkeypatch.setattr(cli_module.cli, "main", _raising(wrapped))
    result = cli("tasks")
    assert (result.code, result.err.strip()) == (130, "error: interrupted")
    during = RuntimeError("a bug in clean-up")
    during.__context__ = KeyboardInterrupt()
    monkeypatch.setattr(cli_module.cli, "main", _raising(during))
    with pytest.raises(RuntimeError, match="a bug in clean-up"):
        cli("tasks")
