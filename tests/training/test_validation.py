"""Validation while training: scores on fixed crops, the best model kept, nothing else changed."""

from __future__ import annotations

import json

import numpy as np
import tifffile
import torch
from helpers import DENOISE, TINY, assert_same, blobs, train, weights
from reliability.checks import TINY as TINY_ARGS
from reliability.checks import one_line_error, snapshot

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.training.validation import VAL_SIDE, rows


def held_out(tmp_path, size: int = 96) -> tuple:
    """A noisy validation image and its clean reference."""
    rng = np.random.default_rng(11)
    clean = 1000 + 20000 * blobs(rng, size)
    noisy = clean + rng.normal(0, 1500, clean.shape)
    paths = tmp_path / "val.tif", tmp_path / "val_ref.tif"
    for path, image in zip(paths, (noisy, clean), strict=True):
        tifffile.imwrite(path, image.clip(0, 65535).astype(np.uint16))
    return paths


def test_validation_scores_keep_the_best_model_and_leave_training_alone(tmp_path, blob_tiffs):
    val = [held_out(tmp_path)]
    cfg = TrainConfig(**TINY, iterations=7, seed=5, val_every=3)
    a, b = blob_tiffs["a"], blob_tiffs["b"]
    train(DENOISE, cfg, tmp_path / "plain", a, b, show_progress=False)
    train(DENOISE, cfg, tmp_path / "validated", a, b, show_progress=False, val=val)
    run = tmp_path / "validated"
    assert_same(weights(tmp_path / "plain"), weights(run))  # validation draws nothing
    logged = rows(run)
    assert [r["iteration"] for r in logged] == [3, 6, 7]  # every val_every, and the end
    assert {"psnr", "psnr_input", "ssim", "ssim_input", "content_iou"} <= set(logged[0])
    assert len({r["psnr"] for r in logged}) == 3  # the EMA generator changed between them
    assert len({r["psnr_input"] for r in logged}) == 1  # the same crop every time
    best = torch.load(run / trained.BEST_MODEL_FILE, weights_only=True)
    top = max(logged, key=lambda r: r["psnr"])
    assert best["validation"] == {"iteration": top["iteration"], "metric": "psnr",
                                  "score": top["psnr"]}
    assert best["iteration"] == top["iteration"]
    assert (run / trained.VAL_CURVE_FILE).read_bytes()[:4] == b"\x89PNG"


def test_without_references_content_iou_picks_the_best(tmp_path, blob_tiffs):
    image, _ = held_out(tmp_path, size=VAL_SIDE + 40)  # larger than a crop
    cfg = TrainConfig(**TINY, iterations=2, val_every=1)
    train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"],
          show_progress=False, val=[(image, None)])
    logged = rows(tmp_path / "run")
    assert "psnr" not in logged[0] and 0 <= logged[0]["content_iou"] <= 1
    best = torch.load(tmp_path / "run" / trained.BEST_MODEL_FILE, weights_only=True)
    assert best["validation"]["metric"] == "content_iou"


def test_a_resumed_run_keeps_its_validation_and_its_best(tmp_path, blob_tiffs):
    val = [held_out(tmp_path)]
    cfg = TrainConfig(**TINY, iterations=6, seed=1, val_every=2)
    a, b = blob_tiffs["a"], blob_tiffs["b"]
    train(DENOISE, cfg, tmp_path / "straight", a, b, show_progress=False, val=val)
    train(DENOISE, cfg, tmp_path / "resumed", a, b, stop_at=3, show_progress=False, val=val)
    with open(tmp_path / "resumed" / trained.VAL_LOG_FILE, "a") as log:
        log.write('{"iteration": 4, "psnr": 9')  # a row torn by a kill
    train(DENOISE, cfg, tmp_path / "resumed", resume=True, show_progress=False)
    assert rows(tmp_path / "resumed") == rows(tmp_path / "straight")
    best = [torch.load(tmp_path / name / trained.BEST_MODEL_FILE, weights_only=True)["validation"]
            for name in ("straight", "resumed")]
    assert best[0] == best[1]


def test_predict_chooses_the_best_or_the_last_model(cli, tmp_path, blob_tiffs):
    val = held_out(tmp_path)
    run = tmp_path / "run"
    result = cli("train", "denoise", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
                 "--out", run, *TINY_ARGS, "--iterations", "4", "--set", "val_every=1",
                 "--val", val[0], "--val-reference", val[1])
    assert result.code == 0, result.err
    best = torch.load(run / trained.BEST_MODEL_FILE, weights_only=True)
    outputs = {}
    for choice in ("best", "last"):
        outputs[choice] = tmp_path / f"{choice}.tif"
        result = cli("predict", run, val[0], "--out", outputs[choice], "--checkpoint", choice)
        assert result.code == 0, result.err
    same = np.array_equal(*(tifffile.imread(p) for p in outputs.values()))
    assert same == (best["iteration"] == 4)
    # by default, the model the run predicts with: denoise's pick is its best validation's
    assert trained.load_run(run)[0].run_checkpoint == "best"
    result = cli("predict", run, val[0], "--out", tmp_path / "default.tif")
    assert result.code == 0, result.err
    assert np.array_equal(tifffile.imread(tmp_path / "default.tif"),
                          tifffile.imread(outputs["best"]))


def test_validation_refusals_are_one_line_and_write_nothing(cli, tmp_path, blob_tiffs):
    val = held_out(tmp_path)
    base = ["train", "denoise", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
            *TINY_ARGS, "--iterations", "2"]
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((40, 40, 3), np.uint8), photometric="rgb")
    before = snapshot(tmp_path)
    one_line_error(cli(*base, "--out", tmp_path / "r1", "--val", val[0], "--val", val[1],
                       "--val-reference", val[1]), "--val-reference", "one for each")
    one_line_error(cli(*base, "--out", tmp_path / "r2", "--val", rgb), "rgb.tif", "channel")
    one_line_error(cli(*base, "--out", tmp_path / "r3", "--val", val[0], "--set",
                       "val_metric=ssim"), "val_metric ssim", "--val-reference")
    assert snapshot(tmp_path) == before
    assert cli(*base, "--out", tmp_path / "run").code == 0
    one_line_error(cli("train", "denoise", "--resume", "--out", tmp_path / "run", "--val",
                       val[0]), "--val", "resumed")
    one_line_error(cli("predict", tmp_path / "run", val[0], "--out", tmp_path / "x.tif",
                       "--checkpoint", "best"), "model_best.pt", "--val")
    assert not (tmp_path / "x.tif").exists()


def test_utom_run_validates_on_its_test_images(cli, tmp_path, blob_tiffs):
    val = held_out(tmp_path)
    out = tmp_path / "out"
    result = cli("run", "denoise", "--a", *blob_tiffs["a"][:1], "--b", *blob_tiffs["b"][:1],
                 "--test", val[0], "--reference", val[1], "--out", out, *TINY_ARGS,
                 "--iterations", "4", "--set", "val_every=2")
    assert result.code == 0, result.err
    logged = [json.loads(line) for line in (out / "run" / trained.VAL_LOG_FILE).read_text()
              .splitlines()]
    assert [r["iteration"] for r in logged] == [2, 4] and "psnr" in logged[0]


def test_utom_run_predicts_with_the_model_content_iou_picked(cli, tmp_path, blob_tiffs):
    """denoise predicts with its best validation by content IoU, never by the references:
    the model is the first of the highest IoU logged, and it is what `utom predict
    --checkpoint best` uses; val_metric=psnr is refused with it, last predicts with the last."""
    val = held_out(tmp_path)
    out = tmp_path / "out"
    base = ["run", "denoise", "--a", *blob_tiffs["a"][:1], "--b", *blob_tiffs["b"][:1],
            "--test", val[0], "--reference", val[1], *TINY_ARGS, "--iterations", "4",
            "--set", "val_every=1"]
    result = cli(*base, "--out", out)
    assert result.code == 0, result.err
    record = json.loads((out / "metrics.json").read_text())
    logged = [json.loads(line) for line in (out / "run" / trained.VAL_LOG_FILE).read_text()
              .splitlines()]
    ious = [row["content_iou"] for row in logged]
    used = record["predicted_with"]
    assert used["model"] == "best" and used["metric"] == "content_iou"
    assert used["iteration"] == logged[ious.index(max(ious))]["iteration"]
    again = tmp_path / "again.tif"
    assert cli("predict", out / "run", val[0], "--out", again, "--checkpoint", "best").code == 0
    assert np.array_equal(tifffile.imread(again),
                          tifffile.imread(record["images"][0]["prediction"]))
    assert "Predicted with `model_best.pt`" in (out / "report.md").read_text()
    one_line_error(cli(*base, "--out", tmp_path / "psnr", "--set", "val_metric=psnr"),
                   "run_checkpoint=best", "references")
    last = cli(*base, "--out", tmp_path / "last", "--set", "run_checkpoint=last")
    assert last.code == 0, last.err
    used = json.loads((tmp_path / "last" / "metrics.json").read_text())["predicted_with"]
    assert used == {"model": "last", "iteration": 4, "white_balance": None}  # a dark target
