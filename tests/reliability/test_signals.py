"""SIGTERM is Ctrl-C: real signals to real ``utom`` processes end with exit 130, one line and
nothing half-written, whatever the process was doing (starting up, predicting, running a task).
"""

from __future__ import annotations

import json
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
    tifffile.imwrite(out, np.full((5, 5), 7, np.uint16))  # yesterday's result
    yesterday = out.read_bytes()
    before = snapshot(data.root)
    proc = spawn(["predict", data.model, image, "--out", out, "--overwrite", "--tile", "32",
                  "--norm", "tile"], tmp_path)
    wait_for(lambda: list(tmp_path.glob(".pred.tif.*.partial")), proc)
    time.sleep(0.3)
    assert proc.poll() is None, "prediction finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    code, lines = _ended(proc, tmp_path)
    assert (code, lines) == (INTERRUPTED, ["error: interrupted"])
    assert out.read_bytes() == yesterday
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


def test_the_command_that_started_a_run_resumes_it_with_resume_appended(tmp_path, data: Data):
    """Ctrl-C to ``utom train`` prints the command that resumes; the original command line with
    --resume appended (its --budget, --seed, --iterations equal to the run's) resumes too."""
    run = tmp_path / "R"
    command = ["train", "denoise", "--a", data.a[0], "--b", data.b[0], *TINY, "--seed", "7",
               "--iterations", "40", "--set", "log_every=1", "--out", run]
    proc = spawn(command, tmp_path)
    wait_for(lambda: (run / "log.jsonl").exists() and len(iterations_logged(run)) >= 3, proc)
    proc.send_signal(signal.SIGINT)
    code, lines = _ended(proc, tmp_path)
    assert code == INTERRUPTED, lines
    said = " ".join("".join(lines).split())
    assert f"resume with: utom train denoise --resume --out {run}" in said, lines
    stopped = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"]
    assert 3 <= stopped < 40
    done = subprocess.run([*CLI, *map(str, command), "--resume"], cwd=tmp_path, text=True,
                          capture_output=True, env={**os.environ, **ONE_THREAD}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr and "finished iteration 40" in " ".join(done.stderr.split())
    assert iterations_logged(run) == list(range(1, 41))  # one run, continued where it stopped


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_a_bench_which_resumes_and_a_second_bench_is_refused(tmp_path, sig):
    """Ctrl-C/SIGTERM to ``utom bench`` mid-training: exit 130, one line, no "failed" row and
    no hidden leftovers; a second bench into the same --out meanwhile is refused in one line;
    the same command again completes the bench."""
    out = tmp_path / "bench"
    command = ["bench", "--tasks", "denoise", "--methods", "utom", "--seeds", "2", "--budget",
               "smoke", "--set", "iterations=60", "--set", "log_every=1", "--out", out]
    proc = spawn(command, tmp_path)
    run = out / "runs" / "denoise" / "utom" / "seed0" / "run"
    wait_for(lambda: (run / "log.jsonl").exists() and len(iterations_logged(run)) >= 3, proc,
             timeout=180)
    second = subprocess.run([*CLI, *map(str, command)], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, **ONE_THREAD}, timeout=120)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"error: {out}: another utom bench is running into it; wait for it to end or choose "
        "another --out"]
    assert proc.poll() is None, "the first bench ended before it could be interrupted"
    proc.send_signal(sig)
    code, lines = _ended(proc, tmp_path, timeout=120)
    errors = [line for line in lines if line.startswith("error:")]
    assert code == INTERRUPTED, lines
    assert len(errors) == 1 and "bench interrupted" in errors[0], lines
    assert "failed" not in (out / "bench.json").read_text() if (out / "bench.json").exists() \
        else True
    assert leftovers(out) == []
    done = subprocess.run([*CLI, *map(str, command)], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **ONE_THREAD}, timeout=400)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "bench.json").read_text())["runs"]
    assert [row["status"] for row in rows] == ["ok", "ok"]


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
def test_interrupting_run_overwrite_restores_the_old_output_and_keeps_the_new_run(
        tmp_path, data: Data, old_output: Path, sig):
    """The old output (report, predictions, previews) is back, byte for byte; the new run's
    checkpoint is kept beside it and the command the message prints resumes it."""
    out = tmp_path / "out"
    shutil.copytree(old_output, out)
    before = snapshot(out)
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
    (kept,) = tmp_path.glob("out.interrupted-*")
    assert f"previous output is back in place and the new run is kept in {kept}" in errors[0]
    again = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"  # what a second one is, by name
    assert f"saving a checkpoint after this iteration ({again} again" in "\n".join(lines)
    assert snapshot(out) == before
    stopped = torch.load(kept / "run" / "checkpoints" / "last.pt", weights_only=True)["iteration"]
    assert 2 <= stopped < 5000
    assert leftovers(tmp_path) == []
    command = re.search(r"`utom (train .*)`", errors[0]).group(1).split()
    assert command == ["train", "denoise", "--resume", "--out", str(kept / "run")]
    done = subprocess.run([*CLI, *command, "--iterations", str(stopped + 1)], text=True,
                          capture_output=True, env={**os.environ, **ONE_THREAD}, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_run_interrupted_while_predicting_says_its_model_is_kept(tmp_path, data: Data):
    """Training done, Ctrl-C during the test image's prediction: one line that names the
    kept run and the command that predicts with it (the partial prediction removed), and
    that command works."""
    test = tmp_path / "large.tif"
    tifffile.imwrite(test, np.random.default_rng(0).integers(0, 20000, (1536, 1536), np.uint16))
    out = tmp_path / "out"
    proc = spawn(["run", "denoise", "--a", data.a[0], "--b", data.b[0], "--test", test,
                  "--out", out, *TINY, "--iterations", "2", "--views", "8"], tmp_path)
    wait_for(lambda: list((out / "predictions").glob(".large.tif.*.partial")), proc,
             timeout=180)
    proc.send_signal(signal.SIGINT)
    code, lines = _ended(proc, tmp_path)
    errors = [line for line in lines if line.startswith("error:")]
    assert code == INTERRUPTED and len(errors) == 1 and errors == lines[-1:], lines
    assert f"the trained run is kept in {out / 'run'}: predict with it" in errors[0]
    assert leftovers(tmp_path) == [] and not list((out / "predictions").iterdir())
    command = re.search(r"`utom (predict .*)`", errors[0]).group(1).split()
    assert command[:2] == ["predict", str(out / "run")]
    done = subprocess.run([*CLI, "predict", command[1], data.a[1], "--out", tmp_path / "p.tif"],
                          text=True, capture_output=True, env={**os.environ, **ONE_THREAD},
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_kept_interrupted_run_resumes_on_the_demo_data_it_made(tmp_path):
    """Its demo data (recorded inside OUT, where the old output is back) is found where the
    new output was moved, so a run with another seed (other demo data) resumes on its own."""
    out, env = tmp_path / "out", {**os.environ, **ONE_THREAD}
    first = subprocess.run([*CLI, "run", "denoise", "--out", str(out), *TINY, "--iterations",
                            "2"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    proc = spawn(["run", "denoise", "--out", out, *TINY, "--seed", "1", "--iterations", "5000",
                  "--set", "checkpoint_every=100000", "--set", "log_every=1", "--overwrite"],
                 tmp_path)
    log = out / "run" / "log.jsonl"
    wait_for(lambda: log.exists() and len(iterations_logged(out / "run")) >= 3, proc,
             timeout=180)
    proc.send_signal(signal.SIGINT)
    code, lines = _ended(proc, tmp_path)
    assert code == INTERRUPTED, lines
    (kept,) = tmp_path.glob("out.interrupted-*")
    done = subprocess.run([*CLI, "train", "denoise", "--resume", "--out", str(kept / "run"),
                           "--iterations", "9"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    inputs = json.loads((kept / "run" / "run.json").read_text())["inputs_a"]
    assert all(Path(i["path"]).is_relative_to(kept) for i in inputs)
