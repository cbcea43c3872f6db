"""The report says which rule picked the model, and reads a gain measure the right way."""

from __future__ import annotations

import pytest
from helpers import run_record

from utom_core.methods.cycle import UTOM
from utom_core.workflow.report import write_report


def test_the_report_gives_the_gain_rule_and_its_figures(tmp_path):
    used = {"model": "best", "iteration": 450, "metric": "resolution", "score": 4.21,
            "content_iou": 0.981, "best_content_iou": 0.997, "tolerance": 0.02}
    metrics = {"resolution": 4.21, "resolution_input": 6.5, "content_iou": 0.98}
    write_report(tmp_path / "report.md", run_record(predicted_with=used, metrics=metrics),
                 tmp_path, UTOM)
    text = (tmp_path / "report.md").read_text()
    assert ("iteration 450, the finest resolution (resolution 4.21) among the validations on "
            "the test images whose content IoU was within 0.02 of the best (0.997; this one's "
            "0.981)") in text
    assert "| resolution | 4.21 | 6.5 | finer than the input |" in text
    assert "worse than the input" not in text


def test_the_report_reads_the_lateral_resolution_as_kept_or_lost(tmp_path):
    metrics = {"anisotropy": 1.2, "anisotropy_input": 1.66, "axial_resolution": 3.6,
               "axial_resolution_input": 4.43, "lateral_resolution": 2.98,
               "lateral_resolution_input": 2.66}
    write_report(tmp_path / "report.md", run_record(metrics=metrics), tmp_path, UTOM)
    text = (tmp_path / "report.md").read_text()
    assert "| axial_resolution | 3.6 | 4.43 | finer than the input |" in text
    lost = "| lateral_resolution | 2.98 | 2.66 | **coarser than the input's: detail lost** |"
    assert lost in text
    kept = {**metrics, "lateral_resolution": 2.7}
    write_report(tmp_path / "kept.md", run_record(metrics=kept), tmp_path, UTOM)
    assert "| 2.7 | 2.66 | kept (within 5% of the input's) |" in (tmp_path / "kept.md").read_text()


@pytest.mark.parametrize(("used", "said"), [
    ({"iteration": 1500, "metric": "content_kept", "score": 0.997, "content_iou": 0.997,
      "best_content_iou": 1.0, "tolerance": 0.005},
     "iteration 1500, the latest model (after a validation since the kept one fell below the "
     "tolerance, a later one only if at least as close) among the validations on the test "
     "images whose content IoU was within 0.005 of the best (1.000; this one's 0.997)"),
    ({"iteration": 1050, "metric": "target_colour", "score": 2.86, "content_iou": 0.831,
      "best_content_iou": 0.837, "tolerance": 0.01},
     "iteration 1050, the colours closest to the target domain's images (target_colour 2.86) "
     "among the validations on the test images whose content IoU was within 0.01 of the best "
     "(0.837; this one's 0.831)"),
    ({"iteration": 300, "metric": "anisotropy", "score": 1.12, "content_iou": 0.99,
      "best_content_iou": 1.0, "tolerance": 0.02, "lateral_kept": False},
     "(1.000; this one's 0.990), picked without their references (`run_checkpoint = \"best\"`; "
     "the curve is in `run/val_curve.png`). Its lateral resolution was over 5% coarser than "
     "its input's (the rule keeps such a model only while no eligible one keeps it): its "
     "anisotropy may owe to lateral blur."),
])
def test_the_report_gives_each_kept_rule_and_its_tolerance(tmp_path, used, said):
    write_report(tmp_path / "report.md", run_record(predicted_with={"model": "best", **used},
                                                    metrics={}), tmp_path, UTOM)
    assert said in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("model", ["last", "best"])
def test_the_report_gives_the_white_balance_where_the_model_has_one(tmp_path, model):
    used = {"model": model, "iteration": 1050, "white_balance": [0.9769, 0.9643, 0.9784]}
    if model == "best":
        used |= {"metric": "content_iou", "score": 0.84}
    write_report(tmp_path / "report.md", run_record(predicted_with=used, metrics={}),
                 tmp_path, UTOM)
    assert "white balance ×0.977, ×0.964, ×0.978 per channel" in (
        tmp_path / "report.md").read_text()
    write_report(tmp_path / "plain.md", run_record(predicted_with={**used, "white_balance": None},
                                                   metrics={}), tmp_path, UTOM)
    assert "white balance" not in (tmp_path / "plain.md").read_text()
