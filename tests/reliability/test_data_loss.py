"""Nothing a user made is ever deleted or replaced by accident (issue 13, data loss 1–4).

1. ``utom train --out R --overwrite`` refuses inputs that live inside ``R`` before touching it.
2. ``--overwrite`` replaces only what utom itself wrote: a folder without utom's marker (a
   user's acquisition folder that happens to hold ``config.json``, ``run/`` or ``metrics.json``,
   or a run from before the marker existed) is refused, and so is a run directory holding a
   file utom did not write.
3. ``utom threshold --preview P`` follows the rules of every other output; its preview is a
   downsampled view of the whole first plane.
4. A prediction output that appears while the prediction runs (another process, a user) is
   never replaced without ``--overwrite``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
from PIL import Image
from reliability.checks import (
    CLI,
    ONE_THREAD,
    TINY,
    Data,
    leftovers,
    one_line_error,
    snapshot,
    spawn,
    wait_for,
    write_zarr,
)

from utom_core import run_folders
from utom_core.errors import UtomError
from utom_core.io import atomic, open_image

pytestmark = pytest.mark.xdist_group("data-loss-runs")


def _utom(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """``utom ARGS`` in a fresh process (module fixtures cannot use the in-process ``cli``)."""
    result = subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **ONE_THREAD})
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data: Data) -> Path:
    """A real run directory, as ``utom train`` writes it (one iteration)."""
    root = tmp_path_factory.mktemp("trained")
    _utom("train", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", root / "run", *TINY,
          "--iterations", "1", cwd=root)
    return root / "run"


@pytest.fixture(scope="module")
def ran(tmp_path_factory, data: Data) -> Path:
    """A real output folder, as ``utom run`` writes it."""
    root = tmp_path_factory.mktemp("ran")
    _utom("run", "denoise", "--a", data.a[0], "--b", data.b[0], "--test", data.a[1],
          "--out", root / "out", *TINY, "--iterations", "1", cwd=root)
    return root / "out"


@pytest.fixture
def old_run(tmp_path, trained) -> Path:
    """A copy of a real run directory the test may overwrite."""
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


@pytest.fixture
def old_output(tmp_path, ran) -> Path:
    return Path(shutil.copytree(ran, tmp_path / "out", symlinks=True))


def _train(d: Data, out: Path, *extra: object, a: Path | None = None, b: Path | None = None):
    return ["train", "denoise", "--a", a or d.a[0], "--b", b or d.b[0], "--out", out, *TINY,
            "--iterations", "1", *extra]


def _run(d: Data, out: Path, *extra: object):
    return ["run", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", out, *TINY,
            "--iterations", "1", *extra]


# 1. inputs inside the run directory ------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["inside", "through-a-link", "dot-dot"])
def test_train_overwrite_refuses_inputs_inside_the_run_directory(cli, tmp_path, old_run,
                                                                 data, spelling):
    scans = old_run / "scans"
    scans.mkdir()
    shutil.copy(data.a[0], scans / "noisy.tif")
    shutil.copy(data.b[0], scans / "clean.tif")
    folder = {"inside": scans, "dot-dot": old_run / "previews" / ".." / "scans",
              "through-a-link": tmp_path / "link"}[spelling]
    (tmp_path / "link").symlink_to(scans, target_is_directory=True)
    before = snapshot(tmp_path)
    result = cli(*_train(data, old_run, "--overwrite", a=folder / "noisy.tif",
                         b=folder / "clean.tif"))
    one_line_error(result, str(old_run), "noisy.tif", "input")
    assert snapshot(tmp_path) == before


def test_train_overwrite_refuses_an_input_folder_that_is_the_run_directory(cli, tmp_path,
                                                                           old_run, data):
    shutil.copy(data.a[0], old_run / "noisy.tif")
    before = snapshot(tmp_path)
    one_line_error(cli(*_train(data, old_run, "--overwrite", a=old_run)), str(old_run), "input")
    assert snapshot(tmp_path) == before


# 2. --overwrite recognises only what utom wrote -------------------------------------------------

@pytest.mark.parametrize("names", [("config.json",), ("run.json",),
                                   ("config.json", "run.json", "checkpoints/last.pt")],
                         ids=["config.json", "run.json", "all-the-names"])
def test_train_overwrite_refuses_a_folder_that_only_looks_like_a_run(cli, tmp_path, data, names):
    folder = tmp_path / "acquisition"
    (folder / "checkpoints").mkdir(parents=True)
    tifffile.imwrite(folder / "scan_0001.tif", np.full((8, 8), 7, np.uint16))
    for name in names:
        (folder / name).write_text('{"microscope": "mine"}')
    before = snapshot(folder)
    one_line_error(cli(*_train(data, folder, "--overwrite")), str(folder),
                   "not a utom run directory")
    assert snapshot(folder) == before


def test_train_overwrite_refuses_a_run_from_before_the_marker_saying_what_to_do(cli, tmp_path,
                                                                                old_run, data):
    """A run written by an older utom (every file but the marker) is refused: delete it by hand."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("config.json", "run.json", "model.pt", "log.jsonl", "checkpoints", "previews"):
        source = old_run / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, legacy / name)
    before = snapshot(legacy)
    one_line_error(cli(*_train(data, legacy, "--overwrite")), str(legacy), "by hand")
    assert snapshot(legacy) == before


def test_resume_marks_a_run_from_before_the_marker(cli, old_run, data):
    """``--resume`` still continues an unmarked run, and marks it: --overwrite then accepts it."""
    (old_run / run_folders.MARKER_FILE).unlink()
    one_line_error(cli(*_train(data, old_run, "--overwrite")), "by hand")
    resumed = cli("train", "denoise", "--resume", "--out", old_run, "--iterations", "2")
    assert resumed.code == 0, resumed.err
    replaced = cli(*_train(data, old_run, "--overwrite"))
    assert replaced.code == 0, replaced.err


@pytest.mark.parametrize("where", ["top", "checkpoints", "previews"])
def test_train_overwrite_refuses_a_run_holding_a_file_utom_did_not_write(cli, old_run, data,
                                                                         where):
    folder = old_run if where == "top" else old_run / where
    (folder / "notes.txt").write_text("what I changed for this run")
    before = snapshot(old_run)
    one_line_error(cli(*_train(data, old_run, "--overwrite")), str(old_run), "notes.txt")
    assert snapshot(old_run) == before


def test_train_overwrite_replaces_a_real_run_and_its_stale_temporaries(cli, old_run, data):
    (old_run / ".model.pt.k3j2h1.tmp").write_bytes(b"left by a killed run")
    old_model = (old_run / "model.pt").read_bytes()
    result = cli(*_train(data, old_run, "--overwrite", "--seed", "7"))
    assert result.code == 0, result.err
    assert (old_run / "model.pt").read_bytes() != old_model
    assert leftovers(old_run) == []
    again = cli(*_train(data, old_run, "--overwrite"))  # what it wrote is a utom run again
    assert again.code == 0, again.err


@pytest.mark.parametrize("names", [("run/",), ("metrics.json",), ("run/", "metrics.json")],
                         ids=["run-folder", "metrics.json", "both"])
def test_run_overwrite_refuses_a_folder_that_only_looks_like_an_output(cli, tmp_path, data,
                                                                       names):
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "protocol.md").write_text("precious")
    for name in names:
        if name.endswith("/"):
            (folder / name).mkdir()
            (folder / name / "raw_0001.tif").write_bytes(b"acquired data")
        else:
            (folder / name).write_text('{"mine": true}')
    before = snapshot(tmp_path)
    one_line_error(cli(*_run(data, folder, "--overwrite")), str(folder), "not a utom run")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["top", "predictions", "run"])
def test_run_overwrite_refuses_an_output_holding_a_file_utom_did_not_write(cli, tmp_path,
                                                                           old_output, data,
                                                                           where):
    folder = old_output if where == "top" else old_output / where
    (folder / "notes.txt").write_text("my analysis")
    before = snapshot(tmp_path)
    one_line_error(cli(*_run(data, old_output, "--overwrite")), str(old_output), "notes.txt")
    assert snapshot(tmp_path) == before


def test_run_overwrite_replaces_a_real_output(cli, tmp_path, old_output, data):
    old_metrics = (old_output / "metrics.json").read_text()
    result = cli(*_run(data, old_output, "--overwrite", "--seed", "3"))
    assert result.code == 0, result.err
    assert (old_output / "metrics.json").read_text() != old_metrics
    assert leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the old one is gone, not aside


# 3. threshold --preview ------------------------------------------------------------------------

def _threshold(image: Path, *extra: object):
    return ["threshold", image, "--task", "denoise", *extra]


def test_threshold_refuses_an_existing_preview_without_overwrite(cli, tmp_path, data):
    preview = tmp_path / "mask.png"
    preview.write_bytes(b"my figure")
    one_line_error(cli(*_threshold(data.a[0], "--preview", preview)), str(preview), "--overwrite")
    assert preview.read_bytes() == b"my figure"
    result = cli(*_threshold(data.a[0], "--preview", preview, "--overwrite"))
    assert result.code == 0, result.err
    assert Image.open(preview).format == "PNG"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("spelling", ["same", "dot-dot", "through-a-link"])
def test_threshold_preview_is_never_its_input(cli, tmp_path, data, spelling):
    image = tmp_path / "scan.tif"
    shutil.copy(data.a[0], image)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.tif").symlink_to(image)
    preview = {"same": image, "dot-dot": tmp_path / "sub" / ".." / "scan.tif",
               "through-a-link": tmp_path / "link.tif"}[spelling]
    before = snapshot(tmp_path)
    one_line_error(cli(*_threshold(image, "--preview", preview, "--overwrite")), "input")
    assert snapshot(tmp_path) == before


def test_a_refused_threshold_writes_no_preview(cli, tmp_path, data):
    preview = tmp_path / "mask.png"
    one_line_error(cli(*_threshold(data.a[0], "--value", "1e9", "--preview", preview)),
                   "threshold")
    assert not preview.exists()
    assert leftovers(tmp_path) == []
    old = tmp_path / "old.png"
    old.write_bytes(b"last week's preview")
    one_line_error(cli(*_threshold(data.a[0], "--value", "1e9", "--preview", old,
                                   "--overwrite")), "threshold")
    assert old.read_bytes() == b"last week's preview"


def test_threshold_preview_shows_the_whole_plane_downsampled(cli, tmp_path):
    """A plane taller than the preview limit is shown whole (downsampled), not cropped: the
    content at its far end is in the preview, and the preview keeps the plane's proportions."""
    rows, cols = 9000, 200
    rng = np.random.default_rng(0)
    image = 1000 + rng.normal(0, 50, (rows, cols))
    image[(np.arange(rows) // 300) % 4 == 0] = 20000  # content bands all along the plane...
    image[-600:] = 20000  # ...and at its bottom, beyond any 4096-pixel crop
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, image.clip(0, 65535).astype(np.uint16))
    preview = tmp_path / "mask.png"
    result = cli(*_threshold(path, "--preview", preview))
    assert result.code == 0, result.err
    shown = np.asarray(Image.open(preview).convert("RGB")).astype(int)
    assert max(shown.shape[:2]) <= 4096
    assert shown.shape[0] / shown.shape[1] == pytest.approx(rows / cols, rel=0.1)
    tinted = shown[..., 0] - shown[..., 1] > 50  # content: magenta over the image
    bottom = tinted[-int(0.05 * shown.shape[0]):]
    assert bottom.mean() > 0.9, "the bottom of the plane is missing from the preview"
    assert 0.2 < tinted.mean() < 0.5  # the bands: a quarter of the plane plus the bottom


# 4. an output that appears while the prediction runs -------------------------------------------

@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    """An image that takes seconds to predict with 32-pixel tiles (about 1800 tiles)."""
    path = tmp_path_factory.mktemp("large") / "large.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 20000, (1024, 1024), np.uint16))
    return path


def _predict_while_another_writer_creates(tmp_path: Path, data: Data, large: Path, name: str,
                                          create, *extra: str) -> tuple[int, str, Path]:
    """Start ``utom predict … --out NAME``; once its hidden partial exists (the start-up checks
    are over), ``create(path)`` the output as another writer would; return exit code, stderr
    and the output path."""
    out = tmp_path / name
    proc = spawn(["predict", data.model, large, "--out", out, "--tile", "32", "--norm", "tile",
                  "--views", "1", *extra], tmp_path)  # 1 view: well under the 30 s progress line
    try:
        wait_for(lambda: list(tmp_path.glob(f".{name}.*.partial")), proc)
        create(out)
        assert proc.poll() is None, "prediction finished before the other writer came"
        code = proc.wait(300)
    finally:
        proc.kill()
    return code, (tmp_path / "stderr.txt").read_text(), out


def _theirs_tiff(path: Path) -> None:
    tifffile.imwrite(path, np.full((5, 5), 42, np.uint16))


def _theirs_folder(path: Path) -> None:
    path.mkdir()
    (path / "theirs.txt").write_text("another writer's result")


def _theirs_store(path: Path) -> None:
    """An OME-Zarr store as utom writes one (what --overwrite may replace)."""
    write_zarr(path, np.full((1, 8, 8), 42, np.uint16), chunk=8)


@pytest.mark.parametrize(("name", "create"), [("pred.tif", _theirs_tiff),
                                              ("pred.ome.zarr", _theirs_folder)],
                         ids=["tiff", "ome-zarr"])
@pytest.mark.slow
def test_an_output_that_appears_during_prediction_is_not_replaced(cli, tmp_path, data, large,
                                                                  name, create):
    before_inputs = snapshot(data.root, large)
    code, err, out = _predict_while_another_writer_creates(tmp_path, data, large, name, create)
    theirs = snapshot(out)
    one_line_error(SimpleNamespace(code=code, err=err), str(out), "--overwrite")
    # the same exit code as an output that was there from the start
    refused = cli("predict", data.model, data.a[0], "--out", out)
    one_line_error(refused, str(out), "--overwrite")
    assert code == refused.code
    assert snapshot(out) == theirs
    assert leftovers(tmp_path) == []
    assert snapshot(data.root, large) == before_inputs


@pytest.mark.parametrize(("name", "create"), [("pred.tif", _theirs_tiff),
                                              ("pred.ome.zarr", _theirs_store)],
                         ids=["tiff", "ome-zarr"])
@pytest.mark.slow
def test_with_overwrite_an_output_that_appears_during_prediction_is_replaced(tmp_path, data,
                                                                             large, name,
                                                                             create):
    code, err, out = _predict_while_another_writer_creates(tmp_path, data, large, name, create,
                                                           "--overwrite")
    assert code == 0, err
    source = open_image(out)
    try:
        assert source.info.shape[-2:] == (1024, 1024)
    finally:
        source.close()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["pred.ome.zarr", "pred.ome.tif"])
@pytest.mark.slow
def test_with_overwrite_a_users_folder_that_appears_during_prediction_is_kept(tmp_path, data,
                                                                             large, name):
    code, err, out = _predict_while_another_writer_creates(tmp_path, data, large, name,
                                                           _theirs_folder, "--overwrite")
    last = err.strip().splitlines()[-1]  # after progress lines, if it ran 30 s on a busy machine
    assert code == 2 and "Traceback" not in err, err
    assert last.startswith(f"error: {out}: is a folder") and "left as it is" in last, err
    assert (out / "theirs.txt").read_text() == "another writer's result"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["file", "folder"])
@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "without-renameat2"])
def test_a_commit_never_replaces_what_is_there_by_then(tmp_path, monkeypatch, kind, renameat2):
    """Also where ``renameat2`` is missing (hard link for a file, check under a lock for a
    folder): an empty folder that appeared is not replaced either, as a plain rename would."""
    if not renameat2:
        monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    elif atomic._renameat2() is None:
        pytest.fail("this Linux has no renameat2 in its C library")
    target = tmp_path / ("out.tif" if kind == "file" else "out.ome.zarr")
    partial = atomic.temporary_sibling(target)
    if kind == "file":
        partial.write_bytes(b"ours")
        target.write_bytes(b"theirs")
    else:
        (partial / "0").mkdir(parents=True)
        target.mkdir()
    before = snapshot(target)
    with pytest.raises(UtomError, match="appeared while utom was writing it"):
        atomic.move_into_place(partial, target)
    assert snapshot(target) == before and partial.exists()  # the caller's abort removes it
    atomic.remove(target)
    atomic.move_into_place(partial, target)
    assert not partial.exists()
    assert (target.read_bytes() == b"ours") if kind == "file" else (target / "0").is_dir()
