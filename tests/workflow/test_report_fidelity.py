"""The report shows the fidelity map of each test image: a figure and the share it doubts."""

from __future__ import annotations

import numpy as np
import tifffile
from helpers import run_record
from PIL import Image

from utom_core.evaluation.figures.fidelity import TINT, fidelity_overlay
from utom_core.methods.cycle import UTOM
from utom_core.workflow.report import write_report


def test_the_overlay_tints_only_doubtful_pixels():
    grey = np.full((4, 4, 3), 100, np.uint8)
    doubt = np.zeros((4, 4))
    doubt[:2] = 1.0
    tinted = fidelity_overlay(grey, doubt)
    assert np.array_equal(tinted[2:], grey[2:])
    assert np.all(np.abs(tinted[:2].astype(float) - (0.3 * 100 + 0.7 * TINT)) <= 0.5)


def test_the_report_draws_the_map_and_says_how_much_is_doubtful(tmp_path):
    prediction, fidelity = tmp_path / "p.tif", tmp_path / "p.fidelity.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(prediction, rng.integers(0, 255, (40, 48, 3), dtype=np.uint8),
                     photometric="rgb")
    doubt = np.zeros((40, 48), np.float32)
    doubt[:, :12] = 1.0
    tifffile.imwrite(fidelity, doubt)
    row = {"test": "t.tif", "reference": None, "prediction": str(prediction), "metrics": {},
           "fidelity": {"path": str(fidelity), "level": 0.5, "above": 0.25}}
    write_report(tmp_path / "report.md", run_record(images=[row], views=8), tmp_path, UTOM)
    text = (tmp_path / "report.md").read_text()
    assert "predicted under 8 view(s)" in text
    assert "![prediction, fidelity map, overlay](previews/t_fidelity.png)" in text
    assert "25.0% of the pixels are above 0.5" in text
    figure = np.asarray(Image.open(tmp_path / "previews" / "t_fidelity.png").convert("RGB"))
    overlay = figure[-40:, -48:].astype(int)  # the last panel, bottom-aligned here
    assert overlay[:, :12, 2].mean() > overlay[:, 12:, 2].mean() + 50  # tinted blue-green


def test_a_record_without_a_map_reports_none(tmp_path):
    row = {"test": "t.tif", "reference": None, "prediction": "p.tif", "metrics": {}}
    write_report(tmp_path / "report.md", run_record(images=[row]), tmp_path, UTOM)
    assert "Fidelity map" not in (tmp_path / "report.md").read_text()
