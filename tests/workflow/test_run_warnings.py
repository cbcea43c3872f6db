"""Issue 28.6/28.7: a failed run is called failed, the report names its model and what it
draws, and the terminal summary gives the thresholds."""

from __future__ import annotations

from pathlib import Path

from helpers import run_record

from utom_core.evaluation.guide import LOW_CONTENT_IOU, low_content_warning, run_warnings
from utom_core.methods.cycle import UTOM
from utom_core.workflow.report import write_report


def test_an_inverted_run_is_called_failed_and_a_speckled_denoise_is_not():
    assert "failed" in low_content_warning({"content_iou": 0.106})
    assert low_content_warning({"content_iou": 0.35}) == ""  # the denoise demo's value
    assert low_content_warning({"psnr": 20.0}) == ""
    both = run_warnings({"content_iou": 0.106, "ssim": 0.2, "ssim_input": 0.3})
    assert len(both) == 2 and "failed" in both[0] and "worse than the input" in both[1]
    assert LOW_CONTENT_IOU == 0.25


def _report(tmp_path: Path, **changes) -> str:
    path = tmp_path / "report.md"
    write_report(path, run_record(**changes), tmp_path, UTOM)
    return path.read_text()


def test_the_report_warns_first_and_names_the_last_model(tmp_path):
    text = _report(tmp_path, metrics={"content_iou": 0.106})
    first = text.index("**Warning: the run failed to keep the content in place")
    assert first < text.index("## Data")
    assert "Predicted with the last model (`model.pt`, iteration 39)" in text
    assert "central crop of at most 512 × 512 pixels" in text  # why validation differs


def test_the_caption_names_only_what_the_panel_draws(tmp_path):
    (tmp_path / "previews").mkdir()
    (tmp_path / "previews" / "t_panel.png").write_bytes(b"png")
    image = {"test": "t.tif", "prediction": str(tmp_path / "p.tif"), "metrics": {}}
    without = _report(tmp_path, images=[{**image, "reference": None}])
    assert "![input, prediction (no reference: no overlay)]" in without
    assert "reference, overlay]" not in without
    assert "![input, prediction, reference, overlay]" in _report(
        tmp_path, images=[{**image, "reference": "r.tif"}])


def test_the_terminal_summary_gives_the_thresholds(tmp_path):
    from utom_core.config import TrainConfig
    from utom_core.workflow.end_to_end import _summary_line
    from utom_tasks.denoise import TASK

    line = _summary_line(TASK, TrainConfig(), {"content_iou": 0.5}, 60.0, tmp_path,
                         (11453.8, 900.0))
    assert "thresholds A 11453.8, B 900 (raw)" in line
