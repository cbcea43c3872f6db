"""The bf16 and time-budget benchmarks print their figures at toy sizes (kept working; the
figures themselves are measured on a quiet machine: docs/results/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow

AUTHORS_MIRROR = Path("/work/.mirror/cabooster+UTOM/repo")


def _script(name: str, *args: object) -> str:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *map(str, args)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bf16_predict_compares_speed_and_pixels(cli, tmp_path):
    run = tmp_path / "dn"
    done = cli("run", "denoise", "--budget", "smoke", "--iterations", "2", "--out", run)
    assert done.code == 0, done.err
    out = _script("bf16_predict.py", run, "--rounds", "1")
    assert out.count("bf16 vs fp32") == 2 * 3  # views 1 and 8, three test images
    assert out.count("1 vs 8 views, fp32") == 3
    assert "speed-up bf16 / fp32" in out


@pytest.mark.skipif(not AUTHORS_MIRROR.is_dir(), reason="no snapshot of the authors' repository")
def test_step_vs_authors_times_every_variant(tmp_path):
    authors = tmp_path / "authors"
    authors.mkdir()
    archive = subprocess.run(["git", "-C", str(AUTHORS_MIRROR), "archive", "HEAD"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(authors)], input=archive, check=True)
    out = _script("step_vs_authors.py", "--authors", authors, "--tile", "32", "--ngf", "8",
                  "--rounds", "1", "--warmup", "1")
    assert "authors fp32" in out
    for upsampling in ("smooth", "resize", "transpose"):
        for amp in ("true", "false"):
            assert f"utom {upsampling}, amp={amp}" in out
    assert "utom smooth, amp=true, lambda_shift=0" in out
    assert "utom transpose, notch 6, amp=true" in out
    assert out.count("x the authors'") == 9


def test_minute_buys_trains_each_run_once_and_prints_its_table(tmp_path):
    args = ("--tasks", "denoise", "--minutes", "0.05", "--precisions", "fp32", "bf16",
            "--budget", "smoke", "--out", tmp_path, "--png", tmp_path / "minutes.png")
    out = _script("minute_buys.py", *args)
    rows = [line for line in out.splitlines() if line.startswith("| 0.05 |")]
    assert [row.split(" | ")[1] for row in rows] == ["fp32", "bf16"]
    assert (tmp_path / "minutes.png").stat().st_size > 0
    logs = sorted(tmp_path.glob("*.log"))
    assert len(logs) == 2
    stamps = [log.stat().st_mtime_ns for log in logs]
    again = _script("minute_buys.py", *args)  # a finished run is read, not trained again
    assert [line for line in again.splitlines() if line.startswith("| 0.05 |")] == rows
    assert [log.stat().st_mtime_ns for log in logs] == stamps
