"""benchmarks/real_core.py scores a real-core `utom run stain-he` folder: its smoke keeps it
working (table rows, the authors' anchor row, crops and spectra)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO, SHARED_DATA

DATA = SHARED_DATA / "utom-colorectal"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "AF_8_HE_pre.png").exists(),
                                 reason="the shared colorectal data sits beside the repository")]


def test_the_real_core_scorer_runs_on_a_smoke_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UTOM_STAIN_HE_DATA": str(DATA)}
    run = tmp_path / "smoke"
    subprocess.run([sys.executable, "-m", "utom_core", "run", "stain-he", "--budget", "smoke",
                    "--out", str(run)], env=env, check=True, capture_output=True, timeout=600)
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "real_core.py"),
                             str(run), "--views", "1", "2", "--png", str(tmp_path / "png")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 1 + 2  # header, the authors' prediction, one per view count
    authors = rows[1].split(" | ")
    assert authors[0] == "| authors' prediction" and authors[3] == "1.000"  # SSIM
    assert [row.split(" | ")[1] for row in rows[2:]] == ["1", "2"]
    assert all("–" not in row.split(" | ")[7] for row in rows[1:])  # periodic, every row
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["authors_spectrum.png", "smoke_views1_crop.png",
                     "smoke_views1_spectrum.png", "smoke_views2_crop.png",
                     "smoke_views2_spectrum.png"]


def test_the_colour_choice_benchmark_keeps_every_validated_model_and_replays_the_rules(
        tmp_path):
    """benchmarks/colour_choice.py on a smoke run, AF_8 itself standing in for the unseen
    core: a row per validated model, each rule's pick named, the summary per rule."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UTOM_STAIN_HE_DATA": str(DATA)}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "colour_choice.py"),
                             "--seeds", "1", "--budget", "smoke", "--out", str(tmp_path),
                             "--unseen", str(DATA), "--views", "1"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    kept = sorted(int(p.stem) for p in (tmp_path / "s1" / "run" / "validated").glob("*.pt"))
    rows = [line.split(" | ") for line in result.stdout.splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    assert kept and [int(row[0][2:]) for row in rows] == kept
    assert "last" in rows[-1][-1]
    assert any("target_colour" in row[-1] for row in rows)
    summary = [line.split(" | ")[0] for line in result.stdout.splitlines()
               if line.startswith("| content_iou") or line.startswith("| target_colour")
               or line.startswith("| last")]
    assert summary == ["| content_iou", "| target_colour", "| last"]
