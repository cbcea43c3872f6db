"""SIGTERM is Ctrl-C: real signals to real ``utom`` processes end with exit 130, one line and
nothing half-written, whatever the process was doing (starting up, predicting, running a task).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from reliability.checks import (
    CLI,
    ONE_THREAD,
    TINY,
    Data,
    iterations_logged,
    leftovers,
    snapshot,
    spawn,
    wait_for,
)

pytestmark = pytest.mark.slow

INTERRUPTED = 130


def _ended(proc: subprocess.Popen, cwd: Path, timeout: float = 60) -> tuple[int, list[str]]:
    """Exit code and non-empty stderr lines of a process that was sent a signal."""
    try:
        code = proc.wait(timeout)
    finally:
        proc.kill()
    lines = [line for line in (cwd / "stderr.txt").read_text().splitlines() if line.strip()]
    return code, lines


def test_sigterm_mid_prediction_is_ctrl_c(tmp_path, data: Data):
    image = tmp_path / "large.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 20000, (1536, 1536), np.uint16))
    out = tmp_path / "pred.tif"
    out.write_bytes(b"yesterday's result")
    before = snapshot(data.root)
    proc = spawn(["predict", data.model, image, "--out", out, "--overwrite", "--tile", "32",
                  "--norm", "tile"], tmp_path)
    wait_for(lambda: list(tmp_path.glob(".pred.tif.*.partial")), proc)
    time.sleep(0.3)
    assert proc.poll() is None, "prediction finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    code, lines = _ended(proc, tmp_path)
    assert (code, lines) == (INTERRUPTED, ["error: interrupted"])
    assert out.read_bytes() == b"yesterday's result"
    assert leftovers(tmp_path) == []  # the partial output was removed
    assert snapshot(data.root) == before


def _importing_torch(stderr: Path) -> bool:
    """``-X importtime`` has reported a torch submodule: torch itself is still importing."""
    return re.search(r"\|\s+torch\.", stderr.read_text(errors="replace")) is not None


def test_ctrl_c_during_start_up_is_one_line(tmp_path, data: Data):
    out = tmp_path / "pred.tif"
    proc = spawn(["predict", data.model, data.a[0], "--out", out], tmp_path,
                 PYTHONPROFILEIMPORTTIME="1")  # -X importtime: each import reported on stderr
    wait_for(lambda: _importing_torch(tmp_path / "stderr.txt"), proc, timeout=60)
    proc.send_signal(signal.SIGINT)
    code, lines = _ended(proc, tmp_path)
    lines = [line for line in lines if not line.startswith("import time:")]
    assert (code, lines) == (INTERRUPTED, ["error: interrupted"])
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def old_output(tmp_path_factory, data: Data) -> Path:
    """A finished ``utom run`` output (copied by each test that replaces it)."""
    out = tmp_path_factory.mktemp("old-run") / "out"
    done = subprocess.run([*CLI, "run", "denoise", "--a", str(data.a[0]), "--b", str(data.b[0]),
                           "--out", str(out), *TINY, "--iterations", "2"],
                          capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_run_overwrite_exits_130_with_a_checkpoint(tmp_path, data: Data,
                                                                old_output: Path, sig):
    out = tmp_path / "out"
    shutil.copytree(old_output, out)
    proc = spawn(["run", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", out, *TINY,
                  "--iterations", "5000", "--set", "checkpoint_every=100000",
                  "--set", "log_every=1", "--overwrite"], tmp_path)
    log = out / "run" / "log.jsonl"  # the old run logged 2 iterations: wait for the new one's
    wait_for(lambda: log.exists() and len(iterations_logged(out / "run")) >= 3, proc)
    proc.send_signal(sig)
    code, lines = _ended(proc, tmp_path)
    assert "Traceback" not in "\n".join(lines)
    errors = [line for line in lines if line.startswith("error:")]
    assert code == INTERRUPTED, lines
    assert len(errors) == 1 and errors == lines[-1:], lines
    assert "interrupted at iteration" in errors[0] and "--resume" in errors[0]
    stopped = torch.load(out / "run" / "checkpoints" / "last.pt", weights_only=True)["iteration"]
    assert 2 <= stopped < 5000
    assert leftovers(tmp_path) == []  # the old output, moved aside, was deleted
