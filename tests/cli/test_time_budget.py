"""``--minutes``/``--hours`` and ``--threads`` on the command line: refusals in one line, and a
planned run whose plan a resume keeps (in a fresh process, as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from reliability.checks import CLI, TINY


@pytest.mark.parametrize("extra", [["--iterations", "5"], ["--set", "iterations=5"],
                                   ["--hours", "1"]])
def test_a_time_budget_goes_alone(cli, tmp_path, blob_tiffs, extra):
    result = cli("train", "denoise", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
                 "--out", tmp_path / "run", "--budget", "smoke", "--minutes", "1", *extra)
    assert result.code != 0
    assert "not both" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_planned_run_trains_its_plan_and_a_resume_keeps_it(tmp_path, blob_tiffs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*CLI, "train", "denoise", "--a", *blob_tiffs["a"][:1], "--b",
               *blob_tiffs["b"][:1], "--out", tmp_path / "run", "--budget", "smoke",
               "--minutes", "0.1", "--threads", "1"]
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    planned = saved["iterations"]
    assert saved["minutes"] == 0.1
    assert f"planned {planned} iterations to fill 0.1 min (step" in done.stdout + done.stderr
    assert "1 thread (--threads)" in done.stdout + done.stderr
    assert f"finished iteration {planned}" in done.stdout + done.stderr
    more = subprocess.run([str(part) for part in [*command, "--resume"]], capture_output=True,
                          text=True, env=env, timeout=300)
    assert more.returncode == 0, more.stderr
    assert "planned " not in more.stdout + more.stderr  # the run's own plan, not a new one
    assert f"finished iteration {planned}" in more.stdout + more.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == saved


def test_a_planned_utom_run_records_and_reports_its_plan(cli, tmp_path, blob_tiffs):
    """metrics.json and report.md give the iterations the run trained (its plan), not the
    budget's count that --minutes replaced."""
    out = tmp_path / "out"
    result = cli("run", "denoise", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
                 "--test", blob_tiffs["a"][1], "--out", out, *TINY, "--minutes", "0.05",
                 "--threads", "1")
    assert result.code == 0, result.err
    trained = json.loads((out / "run" / "config.json").read_text())
    planned = trained["iterations"]
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["iterations"] == planned == record["iterations"]
    assert record["config"]["images_per_epoch"] == trained["images_per_epoch"]  # ρ's decay
    assert f"| iterations | {planned} |" in (out / "report.md").read_text()
