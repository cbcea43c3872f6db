"""Unclean endings (issue 13): advice that does not loop, settings validated strictly, --resume
that says what it applies and refuses what it cannot, file names that are never rich markup,
and every prediction input checked before the first tile is written."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from reliability.checks import CLI, ONE_THREAD, TINY, Data, one_line_error, save_model, snapshot

from utom_core.domain import Domain

pytestmark = pytest.mark.xdist_group("resume-trained-run")

CHECKPOINT = Path("checkpoints", "last.pt")
SAFE_ON_RESUME = ("iterations", "checkpoint_every", "log_every", "preview_every")


@dataclass
class Ran:
    """A finished ``utom`` process (the shape ``one_line_error`` reads)."""

    code: int
    out: str
    err: str


def utom(*args: object, cwd: Path, timeout: float = 300) -> Ran:
    """``utom ARGS`` in a fresh interpreter: what only a real process shows."""
    done = subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **ONE_THREAD}, timeout=timeout)
    return Ran(done.returncode, done.stdout, done.stderr)


def _train(d: Data, out: Path, *extra: object) -> list[object]:
    return ["train", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", out, *TINY, *extra]


def unwrapped(text: str) -> str:
    """``text`` without whitespace: a console not attached to a terminal wraps long lines."""
    return "".join(text.split())


def advises_resume(line: str) -> bool:
    """Whether an error line sends the user (back) to --resume."""
    return re.search(r"\b(use|with|add|try) --resume", line) is not None


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data: Data) -> Path:
    """A finished two-iteration run (tests resume copies of it, never this one)."""
    root = tmp_path_factory.mktemp("trained")
    result = utom(*_train(data, root / "run", "--iterations", "2"), cwd=root)
    assert result.code == 0, result.err
    return root / "run"


def copy_run(trained: Path, to: Path) -> Path:
    shutil.copytree(trained, to)
    return to


# -- a. "nothing to resume" says what to do -------------------------------------------------


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_resume_of_a_folder_without_a_run_says_to_start_one(cli, tmp_path, data, state):
    out = tmp_path / "new-run"
    if state == "empty":
        out.mkdir()
    line = one_line_error(cli("train", "denoise", "--out", out, "--resume"), str(out),
                          "without --resume")
    assert not advises_resume(line)
    assert out.exists() == (state == "empty")
    assert cli(*_train(data, out, "--iterations", "1")).code == 0  # the advice works


@pytest.mark.slow
def test_resume_of_a_run_killed_before_its_first_checkpoint_says_to_start_again(cli, tmp_path,
                                                                                 data):
    """SIGKILL before the first checkpoint leaves a run directory with nothing to resume: the
    refusal leads to a fresh start, not back to --resume, and the plain command starts it (no
    --overwrite needed: nothing of value is there)."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, *map(str, _train(data, run, "--iterations", "100000",
                                "--set", "checkpoint_every=100000"))],
        cwd=tmp_path, env={**os.environ, **ONE_THREAD}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "log.jsonl").exists():  # the loop is running: past every set-up step
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stderr.close()
    assert not (run / CHECKPOINT).exists()

    line = one_line_error(cli("train", "denoise", "--out", run, "--resume"), str(run),
                          "checkpoint", "same command without --resume")
    assert not advises_resume(line)
    assert cli(*_train(data, run, "--iterations", "1")).code == 0  # that command simply starts
    assert (run / CHECKPOINT).is_file()


def test_resume_of_a_utom_run_output_points_at_its_run_folder(cli, tmp_path, trained_run):
    out = tmp_path / "experiment"  # what `utom run --out experiment` leaves: experiment/run
    copy_run(trained_run, out / "run")
    one_line_error(cli("train", "denoise", "--out", out, "--resume"), f"--out {out / 'run'}")
    result = cli("train", "denoise", "--out", out / "run", "--resume", "--iterations", "3")
    assert result.code == 0, result.err


# -- b. settings are validated strictly ------------------------------------------------------


@pytest.mark.parametrize("line", ["iterations = true", 'ngf = "16"', "iterations = 5.0",
                                  "amp = 1", 'threshold_a = "3000"', "tile = [64]",
                                  "augment = 1979-05-27"])
def test_config_file_values_of_the_wrong_type_are_refused(cli, tmp_path, data, line):
    config = tmp_path / "settings.toml"
    config.write_text(line + "\n")
    out = tmp_path / "run"
    one_line_error(cli(*_train(data, out, "--config", config)), "settings.toml",
                   line.split()[0])
    assert not out.exists()


@pytest.mark.parametrize("pair", ['ngf="16"', "iterations=true", "amp=1", "n_blocks=1e0",
                                  "ngf=16.0", "threshold_b='12'"])
def test_set_values_of_the_wrong_type_are_refused(cli, tmp_path, data, pair):
    out = tmp_path / "run"
    one_line_error(cli(*_train(data, out, "--set", pair)), "--set", pair.partition("=")[0])
    assert not out.exists()


@pytest.mark.parametrize("pair", ["ngf=8\nndf=4", "lr=0.001\nngf=4", "method=utom\r\nngf=4"])
def test_set_value_holding_a_newline_is_refused_not_cut(cli, tmp_path, data, pair):
    out = tmp_path / "run"
    one_line_error(cli(*_train(data, out, "--set", pair)), "--set")
    assert not out.exists()


def test_natural_spellings_validate_and_the_saved_config_loads_again(cli, tmp_path, data):
    """Strings for choices, ints for floats and arrays for pairs are what users write; the
    config.json and checkpoint written from them load again for prediction and resume."""
    config = tmp_path / "settings.toml"
    config.write_text('method = "utom"\nlambda_cycle = 10\nrho0 = 5\nbetas = [0.5, 0.999]\n'
                      'threshold_a = 3000\nupsampling = "transpose"\n'
                      'saliency_variant = "authors-code"\n')
    run = tmp_path / "run"
    result = cli(*_train(data, run, "--config", config, "--iterations", "1",
                         "--set", "betas=[0.5, 0.9]", "--set", "threshold_b=auto",
                         "--set", "lambda_identity=1", "--set", "threshold_method=otsu"))
    assert result.code == 0, result.err
    saved = json.loads((run / "config.json").read_text())
    assert saved["method"] == "utom" and saved["saliency_variant"] == "authors-code"
    assert saved["betas"] == [0.5, 0.9] and saved["lambda_cycle"] == 10.0
    assert saved["threshold_a"] == 3000.0 and saved["threshold_b"] == "auto"
    assert saved["upsampling"] == "transpose" and saved["lambda_identity"] == 1.0
    predicted = cli("predict", run, data.a[1], "--out", tmp_path / "p.tif")
    assert predicted.code == 0, predicted.err
    resumed = cli("train", "denoise", "--out", run, "--resume", "--iterations", "2")
    assert resumed.code == 0, resumed.err
    assert json.loads((run / "config.json").read_text())["betas"] == [0.5, 0.9]


# -- c. --resume refuses what would change the run, applies and says the safe subset ----------


@pytest.mark.parametrize("given,needles", [
    (("--set", "ngf=16"), ("--set", "ngf", "--iterations")),
    (("--set", "lr=0.001"), ("--set", "lr", "--iterations")),
    (("--seed", "5"), ("--seed", "seed 0", "gives 5", "--iterations")),
    (("--budget", "demo"), ("--budget", "--iterations")),
    (("--method", "cyclegan"), ("--method", "--iterations")),
    (("--threshold-a", "100"), ("--threshold-a", "--iterations")),
    (("--config", "CONFIG"), ("--config", "--iterations")),
], ids=["set-ngf", "set-lr", "seed", "budget", "method", "threshold", "config"])
def test_resume_refuses_settings_that_change_what_the_run_learns(cli, tmp_path, trained_run,
                                                                 given, needles):
    run = copy_run(trained_run, tmp_path / "run")
    config = tmp_path / "settings.toml"
    config.write_text("ngf = 16\n")
    given = tuple(config if g == "CONFIG" else g for g in given)
    before = snapshot(run)
    one_line_error(cli("train", "denoise", "--out", run, "--resume", *given), *needles)
    assert snapshot(run) == before


def test_resume_accepts_the_options_the_run_was_started_with(cli, tmp_path, data, trained_run):
    """The whole command that started the run, --resume added: equal options change nothing."""
    run = copy_run(trained_run, tmp_path / "run")
    result = cli(*_train(data, run, "--iterations", "3", "--seed", "0", "--method", "utom"),
                 "--resume")
    assert result.code == 0, result.err
    assert "finishediteration3" in unwrapped(result.err)
    assert "resuming with iterations 3 (was 2)" in result.err  # the one real change, said
    assert json.loads((run / "config.json").read_text())["n_blocks"] == 1


def test_resume_of_a_finished_run_says_how_to_train_longer(cli, tmp_path, trained_run):
    """A finished run resumed as it was has nothing to train: said, with the option that
    trains it longer (a silent no-op read as a broken --resume)."""
    run = copy_run(trained_run, tmp_path / "run")
    result = cli("train", "denoise", "--out", run, "--resume")
    assert result.code == 0, result.err
    said = unwrapped(result.err)
    assert "hasfinishedits2iterations" in said and "--iterationsN" in said
    longer = cli("train", "denoise", "--out", run, "--resume", "--iterations", "3")
    assert longer.code == 0, longer.err
    assert "hasfinished" not in unwrapped(longer.err)


def test_resume_checks_given_images_against_the_recorded_fingerprints(cli, tmp_path, data,
                                                                      trained_run, monkeypatch):
    """From another working directory holding files of the run's names (relative --a/--b):
    other content is refused naming the file; the same content, moved, resumes."""
    run = copy_run(trained_run, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(data.a[1], elsewhere / data.a[0].name)  # the recorded name, other pixels
    shutil.copy(data.b[0], elsewhere / data.b[0].name)
    monkeypatch.chdir(elsewhere)
    before = snapshot(run)
    args = ("train", "denoise", "--out", run, "--resume", "--iterations", "3")
    one_line_error(cli(*args, "--a", data.a[0].name, "--b", data.b[0].name),
                   data.a[0].name, "not an image the run trained on", "--a")
    one_line_error(cli(*args, "--a", data.a[0], "--a", data.a[1], "--b", data.b[0].name),
                   "--a", "gives 2 image(s)", "trained on 1")
    assert snapshot(run) == before
    shutil.copy(data.a[0], elsewhere / data.a[0].name)  # moved, the same content
    result = cli(*args, "--a", data.a[0].name, "--b", data.b[0].name)
    assert result.code == 0, result.err


@pytest.mark.parametrize("total", [("--iterations", "4"), ("--set", "iterations=4")],
                         ids=["option", "set"])
def test_resume_applies_the_safe_subset_and_says_so(cli, tmp_path, trained_run, total):
    run = copy_run(trained_run, tmp_path / "run")
    original = json.loads((run / "config.json").read_text())
    result = cli("train", "denoise", "--out", run, "--resume", *total,
                 "--set", "checkpoint_every=1", "--set", "log_every=1",
                 "--set", "preview_every=1")
    assert result.code == 0, result.err
    said = [line for line in result.err.splitlines() if "checkpoint_every" in line]
    assert len(said) == 1, result.err
    assert all(word in said[0] for word in ("iterations", "4", "log_every", "preview_every"))
    saved = json.loads((run / "config.json").read_text())
    assert [saved[k] for k in SAFE_ON_RESUME] == [4, 1, 1, 1]
    assert {k: v for k, v in saved.items() if k not in SAFE_ON_RESUME} == \
        {k: v for k, v in original.items() if k not in SAFE_ON_RESUME}
    assert (run / "previews" / "a2b_0000003.png").is_file()  # preview_every=1 took effect


@pytest.mark.parametrize("pair", ["checkpoint_every=0", 'log_every="5"', "preview_every=2.5"])
def test_resume_validates_the_safe_subset_too(cli, tmp_path, trained_run, pair):
    run = copy_run(trained_run, tmp_path / "run")
    before = snapshot(run)
    one_line_error(cli("train", "denoise", "--out", run, "--resume", "--set", pair),
                   pair.partition("=")[0])
    assert snapshot(run) == before


def test_resume_refuses_a_total_the_run_has_passed(cli, tmp_path, trained_run):
    run = copy_run(trained_run, tmp_path / "run")
    before = snapshot(run)
    one_line_error(cli("train", "denoise", "--out", run, "--resume", "--iterations", "1"),
                   "iterations 1", "already at iteration 2")
    assert snapshot(run) == before  # config.json still plans the run's own total


# -- d. file names are never rich markup -------------------------------------------------------


@pytest.mark.parametrize("name", ["run[v2]", "scan[/b]"])
@pytest.mark.slow
def test_training_into_a_folder_named_like_markup_ends_cleanly(tmp_path, data, name):
    out = tmp_path / name
    result = utom(*_train(data, out, "--iterations", "1"), cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert unwrapped(str(out)) in unwrapped(result.out + result.err)  # named as given
    assert (out / "model.pt").is_file()


@pytest.fixture
def markup_images(tmp_path, data) -> list[Path]:
    folder = tmp_path / "in[/b]"
    folder.mkdir(parents=True)
    images = [folder / "img[v2].tif", folder / "[bold]x.tif"]
    for image, source in zip(images, data.a, strict=True):
        shutil.copyfile(source, image)
    return images


def test_prediction_shows_markup_named_files_as_they_are(cli, tmp_path, data, markup_images,
                                                         monkeypatch):
    monkeypatch.setenv("UTOM_PROGRESS_SECONDS", "0")  # plain progress lines on every update
    out = tmp_path / "out[v2]"
    result = cli("predict", data.model, *markup_images, "--out", out, "--tile", "32")
    assert result.code == 0, result.err
    for image in markup_images:
        assert (out / image.name).is_file()
        assert unwrapped(f"{image} → {out / image.name}") in unwrapped(result.err)
        lines = [line for line in result.err.splitlines() if " tile" in line]
        assert any(line.startswith(f"predicting {image.name}: ") for line in lines), result.err


def test_threshold_shows_a_markup_named_file_as_it_is(cli, markup_images):
    result = cli("threshold", "--task", "denoise", markup_images[0])
    assert result.code == 0, result.err
    assert unwrapped(f"{markup_images[0]}: threshold") in unwrapped(result.out)


def test_errors_keep_markup_characters_in_file_names(cli, tmp_path, data):
    missing = tmp_path / "missing[v2].tif"
    one_line_error(cli(*_train(data, tmp_path / "run", "--a", missing)), str(missing))
    folder = tmp_path / "in[/b]"
    folder.mkdir(parents=True)
    broken = folder / "[bold]bad.tif"
    broken.write_bytes(b"II*\x00broken")
    one_line_error(cli("predict", data.model, broken, "--out", tmp_path / "o.tif"), str(broken))


PLUGIN = """
from utom_core.domain import Domain
from utom_core.hookspecs import hookimpl
from utom_core.task import Task

@hookimpl
def register_tasks(register):
    register(Task(name="spots", summary="[v2] scan[/b]", domain_a=Domain(name="a", channels=1),
                  domain_b=Domain(name="b[red]", channels=1)))
"""


def test_task_table_shows_plugin_text_as_written(cli, installed_plugin):
    installed_plugin("utom-spots", "utom_spots", PLUGIN)
    result = cli("tasks")
    assert result.code == 0, result.err
    assert "[v2] scan[/b]" in result.out and "b[red]" in result.out


# -- e. every prediction input is checked before the first tile --------------------------------


@pytest.fixture(scope="module")
def gray_to_rgb(tmp_path_factory) -> Path:
    """A 1 → 3 channel model (a2b takes one channel, b2a three)."""
    return save_model(tmp_path_factory.mktemp("rgb") / "model", Domain(name="gray", channels=1),
                      Domain(name="rgb", channels=3, dtype="uint8"), "stain-he")


def _rgb(path: Path) -> Path:
    tifffile.imwrite(path, np.full((48, 48, 3), 120, np.uint8), photometric="rgb")
    return path


def _bad_input(kind: str, path: Path, data: Data) -> Path:
    """An input that fits neither generator, or fits the other direction's."""
    if kind == "rgb":
        return _rgb(path)
    if kind == "gray":
        return Path(shutil.copyfile(data.a[0], path))
    if kind == "two-channels":
        tifffile.imwrite(path, np.full((2, 48, 48), 900, np.uint16), imagej=True,
                         metadata={"axes": "CYX"})
    else:
        path.write_bytes(b"II*\x00broken")
    return path


@pytest.mark.parametrize("direction,bad,hint", [
    ("a2b", "rgb", "--direction b2a"),
    ("b2a", "gray", "--direction a2b"),
    ("a2b", "two-channels", None),
    ("a2b", "unreadable", None),
])
def test_prediction_checks_every_input_before_the_first_tile(cli, tmp_path, data, gray_to_rgb,
                                                            direction, bad, hint):
    first = data.a[0] if direction == "a2b" else _rgb(tmp_path / "colour.tif")
    second = _bad_input(bad, tmp_path / "bad.tif", data)
    out = tmp_path / "out"
    before = snapshot(tmp_path, data.root)
    line = one_line_error(cli("predict", gray_to_rgb, first, second, "--out", out,
                              "--direction", direction, "--format", "tiff"), "bad.tif")
    if hint:
        assert hint in line
    else:
        assert "--direction" not in line
    assert not out.exists(), "the first input was predicted before the second was checked"
    assert snapshot(tmp_path, data.root) == before


def test_prediction_checks_volumes_for_xz_yz_planes_before_the_first_tile(cli, tmp_path, data):
    hyperstack = tmp_path / "tz.tif"  # time × z: its "z" columns would run across time points
    tifffile.imwrite(hyperstack, np.full((2, 3, 40, 40), 900, np.uint16), imagej=True,
                     metadata={"axes": "TZYX"})
    out = tmp_path / "out"
    before = snapshot(tmp_path, data.root)
    one_line_error(cli("predict", data.iso_model, data.volume, hyperstack, "--out", out,
                       "--format", "tiff"), "tz.tif")
    assert not out.exists(), "the volume was predicted before the hyperstack was checked"
    assert snapshot(tmp_path, data.root) == before
