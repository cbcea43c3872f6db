"""`utom run TASK --budget smoke` for every built-in task, and stain-he on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import SHARED_DATA

from utom_core.io import read_image
from utom_core.task import Slicing
from utom_tasks import BUILTIN_TASKS

pytestmark = pytest.mark.slow

EXPECTED_METRICS = {
    "stain-he": {"content_iou", "color_emd", "ssim"},
    "denoise": {"psnr", "psnr_input", "ssim", "ssim_input", "content_iou"},
    "isotropic": {"psnr", "psnr_input", "ssim", "ssim_input"},
    "sr": {"psnr", "psnr_input", "ssim", "ssim_input"},
    "label": {"psnr", "ssim", "ssim_c0", "ssim_c1", "ssim_c2", "content_iou"},
}


@pytest.mark.parametrize("task", [t.name for t in BUILTIN_TASKS])
def test_smoke_run_produces_report_metrics_predictions(cli, tmp_path, task):
    out = tmp_path / task
    result = cli("run", task, "--budget", "smoke", "--out", out)
    assert result.code == 0, result.err
    record = json.loads((out / "metrics.json").read_text())
    assert EXPECTED_METRICS[task] <= set(record["metrics"]), sorted(record["metrics"])
    assert record["iterations"] == 6 and record["budget"] == "smoke"
    spec = next(t for t in BUILTIN_TASKS if t.name == task)
    assert record["views"] == 8
    for row in record["images"]:
        prediction = tifffile.imread(row["prediction"])
        assert prediction.dtype == spec.domain_b.dtype.value
        if spec.slicing is Slicing.xz_yz:  # no fidelity maps of XZ/YZ planes yet
            assert row["fidelity"] is None
            continue
        fidelity = tifffile.imread(row["fidelity"]["path"])
        shape = read_image(Path(row["prediction"])).shape  # (C, …, Y, X), RGB or not
        assert fidelity.dtype == np.float32 and fidelity.shape[-2:] == shape[-2:]
        level = row["fidelity"]["level"]
        assert row["fidelity"]["above"] == pytest.approx(np.mean(fidelity > level))
    assert list((out / "previews").glob("*_panel.png"))
    profiles = list((out / "previews").glob("*_profile.png"))
    assert len(profiles) == len(record["images"])  # every demo test image has a reference
    report = (out / "report.md").read_text()
    assert "## Metrics" in report and record["notes"][0][:40] in report
    assert f"previews/{profiles[0].name}" in report
    assert f"{task} [utom]:" in result.err


@pytest.mark.skipif(not (SHARED_DATA / "utom-colorectal" / "AF_8.png").exists(),
                    reason="the shared colorectal data sits beside the repository in CI")
def test_stain_he_on_the_real_colorectal_core(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("UTOM_STAIN_HE_DATA", str(SHARED_DATA / "utom-colorectal"))
    out = tmp_path / "real"
    result = cli("run", "stain-he", "--budget", "smoke", "--out", out)
    assert result.code == 0, result.err
    record = json.loads((out / "metrics.json").read_text())
    assert any("AF_8" in note for note in record["notes"])
    assert 0.0 <= record["metrics"]["content_iou"] <= 1.0
    assert "ssim" in record["metrics"]  # against the authors' own prediction


def test_large_predictions_are_written_as_ome_zarr(cli, tmp_path, monkeypatch):
    """Large predictions go to chunked OME-Zarr, by the same policy as `utom predict` (here:
    the limit lowered)."""
    monkeypatch.setattr("utom_core.inference.files.ZARR_FROM_PIXELS", 1)
    out = tmp_path / "sr"
    result = cli("run", "sr", "--budget", "smoke", "--out", out)
    assert result.code == 0, result.err
    row = json.loads((out / "metrics.json").read_text())["images"][0]
    assert row["prediction"].endswith("widefield_test.ome.zarr")
    assert (out / "predictions" / "widefield_test.ome.zarr" / "zarr.json").exists()
    assert (out / "predictions" / "widefield_test.fidelity.ome.zarr" / "zarr.json").exists()
    assert np.isfinite(row["metrics"]["psnr"])
