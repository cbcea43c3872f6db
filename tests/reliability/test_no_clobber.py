"""Nothing is overwritten by accident: existing outputs and run directories are refused without
--overwrite/--resume, an output is never one of the inputs, and a refused --overwrite (bad
input, bad settings) leaves the old output exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from reliability.checks import TINY, Data, one_line_error, snapshot

from utom_core import run_folders
from utom_core.errors import DiskError, UtomError
from utom_core.run_output import output_folder, relocated


@pytest.fixture
def old_run(tmp_path):
    """What a previous ``utom train`` left (only its names and marker matter to the refusal)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / run_folders.MARKER_FILE).write_text(json.dumps({"format": run_folders.RUN_DIR_FORMAT}))
    (run / "config.json").write_text("{}")
    (run / "run.json").write_text("{}")
    (run / "checkpoints" / "last.pt").write_bytes(b"weeks of training")
    return run


def _train(d: Data, out, *extra):
    return ["train", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", out, *TINY, *extra]


def test_train_refuses_an_existing_run_directory(cli, old_run, data):
    before = snapshot(old_run)
    one_line_error(cli(*_train(data, old_run)), str(old_run), "--resume", "--overwrite")
    assert snapshot(old_run) == before


def test_train_overwrite_refuses_a_folder_that_is_not_a_run(cli, tmp_path, data):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    before = snapshot(folder)
    one_line_error(cli(*_train(data, folder, "--overwrite")), "not a utom run directory")
    assert snapshot(folder) == before


def test_train_refuses_a_file_as_run_directory(cli, tmp_path, data):
    file = tmp_path / "notes.txt"
    file.write_text("precious")
    one_line_error(cli(*_train(data, file, "--overwrite")), "notes.txt")
    assert file.read_text() == "precious"


@pytest.mark.parametrize("problem", [("--set", "tile=18"), ("--set", "lr=nan"),
                                     ("--threshold-a", "1e9")],
                         ids=["bad-tile", "bad-lr", "absurd-threshold"])
def test_train_overwrite_with_bad_settings_keeps_the_old_run(cli, old_run, data, problem):
    """The new run is validated (inputs, settings, networks) before the old one is removed."""
    before = snapshot(old_run)
    one_line_error(cli(*_train(data, old_run, "--overwrite", *problem)))
    assert snapshot(old_run) == before


def test_train_overwrite_with_a_broken_input_keeps_the_old_run(cli, old_run, tmp_path, data):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00broken")
    before = snapshot(old_run)
    one_line_error(cli("train", "denoise", "--a", tmp_path / "bad.tif", "--b", data.b[0],
                       "--out", old_run, "--overwrite", *TINY), "bad.tif")
    assert snapshot(old_run) == before


def test_train_overwrite_replaces_a_run_once_valid(cli, old_run, data):
    result = cli(*_train(data, old_run, "--overwrite", "--iterations", "1"))
    assert result.code == 0, result.err
    assert (old_run / "checkpoints" / "last.pt").read_bytes() != b"weeks of training"


@pytest.fixture
def old_output(tmp_path):
    """What a previous ``utom run`` left."""
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / run_folders.MARKER_FILE).write_text(
        json.dumps({"format": run_folders.RUN_OUTPUT_FORMAT}))
    (out / "metrics.json").write_text('{"psnr": 30}')
    (out / "report.md").write_text("# last week's report")
    return out


def _run(d: Data, out, *extra):
    return ["run", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", out, *TINY, *extra]


def test_run_refuses_an_existing_output(cli, old_output, data):
    before = snapshot(old_output)
    one_line_error(cli(*_run(data, old_output)), "already exists", "--overwrite")
    assert snapshot(old_output) == before


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_folder_of_yours_is_not_offered_to_overwrite(cli, tmp_path, data, command):
    """The refusal names only the ways out that work: a folder utom did not write can neither
    be resumed nor replaced, so it says to choose another --out."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    args = ["--a", data.a[0], "--b", data.b[0], "--out", mine, *TINY]
    result = cli(command, "denoise", *args)
    one_line_error(result, "already exists", "choose another --out")
    assert "--overwrite to" not in result.err and "--resume" not in result.err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("problem", ["corrupt-a", "bad-reference", "bad-setting"])
def test_run_overwrite_that_fails_before_training_keeps_the_old_output(cli, old_output,
                                                                       tmp_path, data,
                                                                       problem):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00broken")
    args = {
        "corrupt-a": ["run", "denoise", "--a", bad, "--b", data.b[0], "--out", old_output,
                      *TINY],
        "bad-reference": _run(data, old_output, "--test", data.a[1], "--reference", bad),
        "bad-setting": _run(data, old_output, "--set", "tile=18"),
    }[problem]
    before = snapshot(tmp_path)
    one_line_error(cli(*args, "--overwrite"))
    assert snapshot(tmp_path) == before  # no hidden copy left aside either


def test_run_output_is_never_an_input(cli, tmp_path, data):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a.tif", tifffile.imread(data.a[0]))
    tifffile.imwrite(inputs / "b.tif", tifffile.imread(data.b[0]))
    before = snapshot(tmp_path)
    for out in (inputs, inputs / "a.tif"):
        one_line_error(cli("run", "denoise", "--a", inputs / "a.tif", "--b", inputs / "b.tif",
                           "--out", out, "--overwrite", *TINY), str(out))
        assert snapshot(tmp_path) == before


def test_predict_refuses_existing_output_and_input_as_output(cli, tmp_path, data):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((20, 20), 900, np.uint16))
    existing = tmp_path / "existing.tif"
    existing.write_bytes(b"precious")
    before = snapshot(tmp_path, data.root)
    one_line_error(cli("predict", data.model, image, "--out", existing), "already exists",
                   "--overwrite")
    one_line_error(cli("predict", data.model, image, "--out", image, "--overwrite"),
                   "would overwrite its input")
    # a folder output whose file name would be the input's own path
    one_line_error(cli("predict", data.model, image, "--out", tmp_path, "--format", "tiff",
                       "--overwrite"), "would overwrite its input")
    assert snapshot(tmp_path, data.root) == before


def test_a_kept_run_without_room_for_its_note_finds_its_data_by_its_name(tmp_path):
    """A new run kept aside on a full disk has no ``made_in`` in its marker: the folder's
    name says where it was made, so its data inside that output are found in the kept one."""
    kept = tmp_path / "out.failed-20261208-101010"
    (kept / "run").mkdir(parents=True)
    (kept / run_folders.MARKER_FILE).write_text(
        json.dumps({"format": run_folders.RUN_OUTPUT_FORMAT}))
    moved = relocated(kept / "run")
    assert moved(str(tmp_path / "out" / "data" / "a.tif")) == str(kept / "data" / "a.tif")
    assert moved(str(tmp_path / "elsewhere" / "a.tif")) == str(tmp_path / "elsewhere" / "a.tif")
    assert relocated(tmp_path / "out" / "run")(str(tmp_path / "out" / "a.tif")) == str(
        tmp_path / "out" / "a.tif")


@pytest.mark.parametrize("named", ["out/run/checkpoints/last.pt", "data/about/a.tif"])
def test_a_failed_kept_run_is_named_with_the_paths_where_they_are_now(tmp_path, monkeypatch,
                                                                      named):
    """The error of a new run that failed after training names the folder it is kept in; a
    path it names inside the new output is given where it is now, any other as it was (a
    relative ``--out out`` is not rewritten inside ``data/about``)."""
    monkeypatch.chdir(tmp_path)
    out = Path("out")
    out.mkdir()
    (out / run_folders.MARKER_FILE).write_text(
        json.dumps({"format": run_folders.RUN_OUTPUT_FORMAT}))
    with pytest.raises(UtomError) as raised, output_folder(out, overwrite=True):
        (out / "run" / "checkpoints").mkdir(parents=True)
        (out / "run" / "checkpoints" / "last.pt").write_bytes(b"trained")
        raise DiskError(Path(named), "cannot write (No space left on device)")
    (kept,) = Path().glob("out.failed-*")
    where = kept / "run" / "checkpoints" / "last.pt" if named.startswith("out/") else named
    assert str(raised.value) == (f"{where}: cannot write (No space left on device); the "
                                 f"previous output is back in place and the failed new run is "
                                 f"kept in {kept}")
    assert raised.value.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == [run_folders.MARKER_FILE]
