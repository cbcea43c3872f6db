"""The first hour of a new user (issue 18): progress in batch logs, a held-out region of one's
own image, one threshold for one image, reports that say what good looks like, and the small
things around them — each driven through the CLI as a user would."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from helpers import REPO, blobs, run_record
from PIL import Image
from reliability.checks import CLI, TINY, one_line_error, snapshot

from utom_tasks.demo import bundled

pytestmark = pytest.mark.slow

BATCH_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "UTOM_PROGRESS_SECONDS": "0"}
"""A batch job whose log shows every progress line (the default interval is 30 s)."""


def fluorescence(rng, size: int) -> np.ndarray:
    """A dark-background 16-bit image with bright blobs (autofluorescence-like)."""
    image = 3000 + 20000 * blobs(rng, size, count=size // 6) + rng.normal(0, 300, (size, size))
    return image.clip(0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One 160 px fluorescence image (A), its clean twin (a reference), and an H&E (B)."""
    root = tmp_path_factory.mktemp("first-hour")
    rng = np.random.default_rng(3)
    clean = (3000 + 20000 * blobs(rng, 160, count=26)).astype(np.uint16)
    noisy = (clean + rng.normal(0, 1500, clean.shape)).clip(0, 65535).astype(np.uint16)
    paths = {"a": root / "own.tif", "reference": root / "own_clean.tif",
             "b": root / "other.tif", "he": root / "he.png"}
    tifffile.imwrite(paths["a"], noisy)
    tifffile.imwrite(paths["reference"], clean)
    tifffile.imwrite(paths["b"], fluorescence(rng, 128))
    Image.fromarray(bundled("he_target.png")[:160, :160]).save(paths["he"])
    return paths


# -- 1. progress outside a terminal ------------------------------------------------------------

def test_a_batch_job_logs_plain_progress_lines(tmp_path, images):
    """stderr to a file, as under SLURM: the estimate, iteration lines with rate, ETA and
    losses, and prediction lines with tiles and MP/s; no bar characters."""
    out, log = tmp_path / "out", tmp_path / "job.log"
    with open(log, "w") as handle:
        done = subprocess.run([*CLI, "run", "denoise", "--a", images["a"], "--b", images["b"],
                               "--test-region", ":,0.4:0.6", "--out", out, *TINY,
                               "--iterations", "8"],
                              stderr=handle, stdout=subprocess.PIPE, env=BATCH_ENV, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "training: 8 iterations, expected to take about" in text
    progress = [line for line in text.splitlines() if line.startswith("training: iteration ")]
    assert progress and "/8 (" in progress[-1] and "img/s" in progress[-1]
    assert "ETA" in progress[0] and "cyc" in progress[-1]  # the losses ride along
    assert "training: 8/8 iterations in" in text
    assert "━" not in text and "\r" not in text  # no redrawn bar in a log

    model, tiles = out / "run", tmp_path / "predicted.tif"
    with open(log, "w") as handle:
        done = subprocess.run([*CLI, "predict", model, images["a"], "--out", tiles, "--tile",
                               "32"], stderr=handle, env=BATCH_ENV, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    lines = [line for line in text.splitlines() if line.startswith("predicting own.tif: tile ")]
    assert lines and "MP/s" in lines[-1]


def test_a_short_run_in_a_log_prints_no_progress_at_the_default_interval(cli, tmp_path, images):
    result = cli("train", "denoise", "--a", images["a"], "--b", images["b"], "--out",
                 tmp_path / "run", *TINY)
    assert result.code == 0, result.err
    assert [line for line in result.err.splitlines() if line.strip()] == [
        line for line in result.err.splitlines() if line.startswith("denoise: finished")]


# -- 2. a held-out region of one's own image ---------------------------------------------------

def test_a_test_region_is_cut_out_of_the_one_image_with_guard_gaps(cli, tmp_path, images):
    out = tmp_path / "out"
    result = cli("run", "denoise", "--a", images["a"], "--b", images["b"], "--test-region",
                 ":,0.4:0.6", "--reference", images["reference"], "--out", out, *TINY)
    assert result.code == 0, result.err
    record = json.loads((out / "metrics.json").read_text())
    held = record["held_out"]
    assert held["tests"][0]["columns"] == [64, 96] and held["tests"][0]["rows"] == [0, 160]
    assert [p["columns"] for p in held["training"]] == [[0, 48], [112, 160]]  # 16-px gaps
    source, truth = tifffile.imread(images["a"]), tifffile.imread(images["reference"])
    (test,) = [row["test"] for row in record["images"]]
    np.testing.assert_array_equal(tifffile.imread(test), source[:, 64:96])
    np.testing.assert_array_equal(tifffile.imread(record["images"][0]["reference"]),
                                  truth[:, 64:96])
    layout = json.loads((out / "data" / "regions.json").read_text())
    trained = [entry["region"][1] for entry in layout.values() if entry["role"] == "a"]
    assert all(stop <= 64 - 16 or start >= 96 + 16 for start, stop in trained)
    run = json.loads((out / "run" / "run.json").read_text())
    assert sorted(os.path.basename(i["path"]) for i in run["inputs_a"]) == [
        "own_train_r0-160_c0-48.tif", "own_train_r0-160_c112-160.tif"]
    assert "psnr" in record["metrics"]
    report = (out / "report.md").read_text()
    assert "Held out of" in report
    # the report's threshold command names the pieces trained on, and gives the run's threshold
    command = shlex.split(report[report.index("`utom threshold ") + 1:].split("`")[0])
    assert [Path(part).name for part in command[2:4]] == [
        "own_train_r0-160_c0-48.tif", "own_train_r0-160_c112-160.tif"]
    assert "--sample-pixels" in command  # TINY's sample, not utom threshold's default
    given = [images["b"] if part == "B_IMAGE" else part for part in command[2:]]
    fitted = cli("threshold", *given)
    assert fitted.code == 0, fitted.err
    assert f"threshold {record['thresholds']['a']:.6g} " in fitted.out + fitted.err


@pytest.mark.parametrize(("regions", "needles"), [
    (("0:100,0:100", "0:100,110:160"), ("overlap", "guard gap")),
    (("0:200,0:50",), ("rows", "outside")),
    (("0.9:0.3,:",), ("empty",)),
    (("rows 0 to 5",), ("expected ROWS,COLUMNS",)),
    (("1.5:,:",), ("fraction",)),
    ((":,16:144",), ("no training piece",)),
    (("0:1,0:1",), ("1 rows × 1 columns", "at least 6 × 6")),
    (("0:3,:",), ("3 rows", "at least 6 × 6")),
    ((":,10:11",), ("1 columns", "at least 6 × 6")),
], ids=["overlap", "outside", "empty", "syntax", "fraction", "nothing-left", "1x1", "3-rows",
        "1-column"])
def test_bad_test_regions_are_refused_before_anything_is_written(cli, tmp_path, images,
                                                                 regions, needles):
    before = snapshot(images["a"].parent)
    args = [arg for region in regions for arg in ("--test-region", region)]
    result = cli("run", "denoise", "--a", images["a"], "--b", images["b"], *args, "--out",
                 tmp_path / "out", *TINY)
    one_line_error(result, "--test-region", *needles)
    assert not (tmp_path / "out").exists() and snapshot(images["a"].parent) == before


def test_the_smallest_test_region_trains_validates_and_scores(cli, tmp_path, images):
    """The size the refusal above names works: validated while training, then scored."""
    out = tmp_path / "out"
    result = cli("run", "denoise", "--a", images["a"], "--b", images["b"], "--test-region",
                 "0:6,0:6", "--reference", images["reference"], "--out", out, *TINY)
    assert result.code == 0, result.err
    assert "ssim" in json.loads((out / "metrics.json").read_text())["metrics"]


def test_a_test_region_of_an_image_that_is_also_trained_on_as_b_is_refused(cli, tmp_path,
                                                                           images):
    result = cli("run", "denoise", "--a", images["a"], "--b", images["a"], "--test-region",
                 ":,0.4:0.6", "--out", tmp_path / "out", *TINY)
    one_line_error(result, "also a --b image")


# -- 3. one threshold for one image ------------------------------------------------------------

def test_utom_threshold_and_training_report_the_same_threshold(cli, tmp_path, images):
    """Same image, any budget, any seed: the threshold and content fraction that `utom
    threshold` prints are the ones training stores (and says)."""
    shown = cli("threshold", images["a"], "--task", "stain-he", "--domain", "a")
    assert shown.code == 0, shown.err
    words = shown.out.split()
    threshold = float(words[words.index("threshold") + 1])
    fraction = words[words.index("marks") + 1]
    for budget, seed in (("smoke", "0"), ("bench", "7")):
        run = tmp_path / f"{budget}-{seed}"
        result = cli("train", "stain-he", "--a", images["a"], "--b", images["he"], "--out",
                     run, "--budget", budget, "--seed", seed, "--iterations", "1")
        assert result.code == 0, result.err
        meta = json.loads((run / "run.json").read_text())
        assert f"{meta['threshold_a']:.6g}" == f"{threshold:.6g}"
        assert f"{meta['content_fraction_a']:.1%}" == fraction
        assert f"A {threshold:.6g} ({fraction} content, " in result.err


def test_the_h_and_e_mask_preview_is_green_with_an_outline(cli, tmp_path, images):
    preview = tmp_path / "mask.png"
    result = cli("threshold", images["he"], "--task", "stain-he", "--domain", "b",
                 "--preview", preview)
    assert result.code == 0, result.err
    assert "(task default, raw units)" in result.out
    pixels = np.asarray(Image.open(preview).convert("RGB")).reshape(-1, 3)
    assert (pixels == (0, 200, 0)).all(axis=1).any()  # the outline, in full green
    assert not (pixels == (255, 0, 255)).all(axis=1).any()


def test_a_preview_of_several_images_says_which_one_it_shows(cli, tmp_path, images):
    """A folder (or several files) is fitted whole, as training fits it; the preview shows
    one plane and names it."""
    folder = tmp_path / "he"
    folder.mkdir()
    shutil.copy(images["he"], folder / "he_left.png")
    pale = np.asarray(Image.open(images["he"]).convert("RGB")) // 2 + 128  # another image
    Image.fromarray(pale.astype(np.uint8)).save(folder / "he_right.png")
    preview = tmp_path / "mask.png"
    result = cli("threshold", folder, "--task", "stain-he", "--domain", "b", "--method", "otsu",
                 "--preview", preview)
    assert result.code == 0, result.err
    assert f"mask preview: {preview} (the first plane of he_left.png; 2 planes in all)" in \
        result.out

    def fitted(*paths: Path) -> str:
        done = cli("threshold", *paths, "--task", "stain-he", "--domain", "b", "--method",
                   "otsu")
        assert done.code == 0, done.err
        return done.out.split(": ", 1)[1].strip()

    both = fitted(folder / "he_left.png", folder / "he_right.png")
    assert both == result.out.splitlines()[0].split(": ", 1)[1]
    assert both != fitted(folder / "he_left.png")


# -- 4. reports that say what good looks like --------------------------------------------------

def test_the_report_orders_metrics_explains_them_and_draws_the_losses(cli, tmp_path, images):
    out = tmp_path / "first run"  # a space: the report's command quotes its path
    result = cli("run", "denoise", "--a", images["a"], "--b", images["b"], "--test-region",
                 ":,0.4:0.6", "--reference", images["reference"], "--out", out, *TINY)
    assert result.code == 0, result.err
    report = (out / "report.md").read_text()
    record = json.loads((out / "metrics.json").read_text())
    summary = report[report.index("## Metrics"):report.index("## Test images")]
    rows = [line.split(" | ")[0].strip("| ") for line in summary.splitlines()
            if line.startswith("| ") and not line.startswith("| metric")]
    assert rows[:2] == ["content_iou", "content_iou_ref"]
    assert rows.index("psnr") < rows.index("content_dice")
    assert "psnr_input" not in rows  # beside psnr, not a row of its own
    psnr_row = next(line for line in summary.splitlines() if line.startswith("| psnr |"))
    assert f"{record['metrics']['psnr_input']:.4g}" in psnr_row
    assert "doing nothing" in psnr_row
    assert "Reading them:" in summary and "- `psnr`: PSNR" in summary
    assert "![loss curves](previews/training_losses.png)" in report
    with Image.open(out / "previews" / "training_losses.png") as curves:
        assert curves.size[1] > 400  # one panel per loss term
    assert "yellow line on the panel" in report
    # the command the report gives predicts the test image as the run did
    command = shlex.split(report[report.index("```bash\nutom predict ") + 8:].splitlines()[0])
    assert command[:3] == ["utom", "predict", str(out / "run")]
    row, again = record["images"][0], tmp_path / "again"
    given = [row["test"] if a == "IMAGE..." else again if a == "FOLDER" else a
             for a in command[2:]]
    assert cli("predict", *given).code == 0
    written = again / Path(row["prediction"]).name
    assert np.array_equal(tifffile.imread(written), tifffile.imread(row["prediction"]))
    # and the napari command opens this folder with utom's reader
    napari = shlex.split(report[report.index("```bash\nnapari ") + 8:].splitlines()[0])
    assert napari == ["napari", "--plugin", "napari-utom", str(out)]


def test_the_report_shows_a_validation_curve_when_the_run_has_one(tmp_path):
    from utom_core.methods.cycle import UTOM
    from utom_core.workflow.report import write_report

    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(out / "run" / "val_curve.png")
    (out / "run" / "log.jsonl").write_text("".join(
        json.dumps({"iteration": i, "rho": 1.0, "lr": 1e-4, "cycle_a": 1 / i, "cycle_b": 2 / i})
        + "\n" for i in range(1, 40)))
    record = run_record(metrics={"ssim": 0.5, "ssim_input": 0.6})
    write_report(out / "report.md", record, out, UTOM)
    report = (out / "report.md").read_text()
    assert "![validation curve](run/val_curve.png)" in report
    assert "**0.1 below the input: worse than doing nothing**" in report
    assert "smooth resize-then-convolve (the default)" in report
    assert "Warning: the prediction is worse than the input" in report.split("## Data")[0]


def test_panel_labels_wrap_within_their_image_and_the_profile_line_is_marked(tmp_path):
    from utom_core.evaluation.figures.panels import LABEL_HEIGHT, MARK, save_panel

    tiles = [np.zeros((1, 40, 60), np.float32), np.zeros((1, 40, 60), np.float32)]
    path = save_panel(tmp_path / "p.png", tiles, ["overlay: prediction magenta, reference "
                      "green, both white", "x"], line=(20, slice(5, 50)))
    pixels = np.asarray(Image.open(path).convert("RGB"))
    top = pixels.shape[0] - 40
    assert top > LABEL_HEIGHT  # the long label took more than one line
    assert (pixels[:top, 60:64] == 255).all()  # and stayed off the gap between the images
    assert (pixels[top + 20, 10] == MARK).all() and (pixels[top + 20, 84] == MARK).all()


# -- 7. small things ---------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_predict_names_its_own_device_option(cli, tmp_path, images):
    run = tmp_path / "run"
    assert cli("train", "denoise", "--a", images["a"], "--b", images["b"], "--out", run,
               *TINY).code == 0
    line = one_line_error(cli("predict", run, images["a"], "--out", tmp_path / "p",
                              "--device", "cuda"), "--device cuda", "no CUDA")
    assert "--set" not in line


def test_train_help_offers_only_what_train_can_do(cli):
    train, run = cli("train", "--help"), cli("run", "--help")
    assert "supervised" not in train.out and "supervised" in run.out
    for budget in ("smoke", "quick", "bench", "demo", "full"):
        assert f"{budget} (" in " ".join(train.out.split())


@pytest.mark.parametrize("command", ["tasks", "plugins", "methods"])
def test_listings_are_whole_when_piped_and_have_json(cli, command):
    from utom_core.plugins import get_registry

    table = cli(command)
    assert table.code == 0 and "…" not in table.out
    listed = json.loads(cli(command, "--json").out)
    if command == "tasks":
        assert {row["task"] for row in listed} == set(get_registry().tasks)
        assert all(task.summary in table.out for task in get_registry().tasks.values())
    elif command == "methods":
        assert [row["method"] for row in listed] == list(get_registry().methods)
        assert {row["trains"] for row in listed} == {"G: A→B, F: B→A", "G: A→B", "aligned pairs"}
        shown = " ".join(table.out.split())
        assert all(m.summary in shown for m in get_registry().methods.values())
        settings = {row["method"]: row["settings"] for row in listed}  # as --set takes them
        assert settings["fastcut"].split(", ") == ["method_settings.lambda_nce=10.0",
                                                   "method_settings.nce_patches=256",
                                                   "method_settings.nce_temperature=0.07"]
        assert settings["utom"] == "" and "method_settings.nce_patches=256" in shown
    else:
        assert {row["plugin"] for row in listed} == {p.name for p in get_registry().plugins}
        assert all(row["module"] in table.out for row in listed)


def test_the_first_hour_page_is_linked(cli):
    readme, index = (REPO / "README.md").read_text(), (REPO / "docs" / "index.md").read_text()
    assert "docs/first-hour.md" in readme and "(first-hour.md)" in index
    page = (REPO / "docs" / "first-hour.md").read_text()
    for step in ("pip install", "utom threshold", "--test-region", "utom predict"):
        assert step in page
