"""A real full or read-only file system: one line naming the file, exit 1, nothing left behind.

Each test mounts a small tmpfs (the tests run as root), fills it with a filler file and runs
utom in a fresh process, so the failure is what a user gets: ``torch.save`` raising
``RuntimeError``, a memory-mapped write ending in SIGBUS, a zarr chunk store refusing a chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from reliability.checks import (
    TINY,
    Data,
    iterations_logged,
    leftovers,
    one_line_error,
    snapshot,
    spawn,
    wait_for,
)
from reliability.disks import NO_SPACE, READ_ONLY, ROOM, Result, utom

from utom_core.io import open_image, writer_for
from utom_core.io.base import ImageInfo

pytestmark = pytest.mark.slow

def _train(d: Data, run: Path, *extra: object) -> list:
    return ["train", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", run, *TINY, *extra]


def _iteration(path: Path) -> int:
    return torch.load(path, weights_only=True)["iteration"]


def _failed(result: Result, *needles: str) -> str:
    """One line naming ``needles``, and exit code 1 (the disk or the OS refused)."""
    assert result.code == 1, f"exit {result.code}, not 1:\n{result.err[-2000:]}"
    return one_line_error(result, *needles)


def test_a_checkpoint_that_does_not_fit_keeps_the_previous_one_and_resume_finishes(disk, data,
                                                                                  cli):
    run = disk.work / "run"
    first = cli(*_train(data, run, "--iterations", "2"))
    assert first.code == 0, first.err
    kept = {name: (run / name).read_bytes() for name in ("checkpoints/last.pt", "model.pt")}
    disk.fill(ROOM)

    result = utom("train", "denoise", "--resume", "--out", run, "--iterations", "4")
    notice, rest = result.err.split("\n", 1)  # resuming names the new total first
    assert notice.startswith(f"{run}: resuming with iterations 4"), result.err
    _failed(Result(result.code, result.out, rest), str(run / "checkpoints" / "last.pt"),
            NO_SPACE, "the checkpoint of iteration 2 is intact")
    assert leftovers(run) == []  # the checkpoint's temporary file is gone
    assert {name: (run / name).read_bytes() for name in kept} == kept

    disk.free()
    resumed = cli("train", "denoise", "--resume", "--out", run, "--iterations", "4")
    assert resumed.code == 0, resumed.err
    assert _iteration(run / "checkpoints" / "last.pt") == 4
    assert _iteration(run / "model.pt") == 4


def test_a_first_checkpoint_that_does_not_fit(disk, data, cli):
    run = disk.work / "run"
    disk.fill(ROOM)
    _failed(utom(*_train(data, run, "--iterations", "2")),
            str(run / "checkpoints" / "last.pt"), NO_SPACE, "no checkpoint")
    assert leftovers(disk.work) == []
    assert not (run / "checkpoints" / "last.pt").exists()
    disk.free()
    again = cli(*_train(data, run, "--iterations", "2", "--overwrite"))
    assert again.code == 0, again.err
    assert _iteration(run / "checkpoints" / "last.pt") == 2


def test_a_run_directory_on_a_disk_without_any_space(disk, data, cli):
    """Not even the settings fit: one line, and the same command works once there is space."""
    run = disk.work / "run"
    disk.fill(0)
    _failed(utom(*_train(data, run, "--iterations", "1")), str(run), NO_SPACE)
    assert leftovers(disk.work) == []
    disk.free()
    again = cli(*_train(data, run, "--iterations", "1"))
    assert again.code == 0, again.err


def _old_output(out: Path) -> None:
    """Yesterday's result, written by utom (--overwrite replaces nothing else)."""
    sink = writer_for(out).create(out, ImageInfo((1, 8, 8), np.dtype(np.uint16)), chunk=8)
    sink.write((slice(0, 8), slice(0, 8)), np.full((1, 8, 8), 7, np.uint16))
    sink.commit()


@pytest.mark.parametrize("fmt", ["tif", "ome.zarr", "ome.tif", "png"])
def test_a_prediction_that_does_not_fit_leaves_nothing_and_keeps_the_old_output(
        disk, tmp_path, data, cli, fmt):
    image = tmp_path / "in.tif"  # 512 KiB of output: eight times the room left
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 20000, (512, 512), np.uint16))
    out = disk.work / f"pred.{fmt}"
    _old_output(out)
    before = snapshot(disk.work, data.root)
    disk.fill(ROOM)

    result = utom("predict", data.model, image, "--out", out, "--overwrite")
    _failed(result, str(out), NO_SPACE)
    assert snapshot(disk.work, data.root) == before  # the old output as it was, no partial

    disk.free()
    again = cli("predict", data.model, image, "--out", out, "--overwrite")
    assert again.code == 0, again.err
    source = open_image(out)
    assert source.info.shape == (1, 512, 512)
    source.close()


def test_a_full_temporary_folder_is_named_as_such(disk, tmp_path, data):
    """Isotropic prediction keeps its XZ pass (here 600 KiB) in a scratch store under TMPDIR."""
    volume = tmp_path / "volume.tif"
    tifffile.imwrite(volume, np.random.default_rng(0).integers(0, 20000, (4, 192, 192),
                                                               np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    scratch = disk.root / "tmp"
    scratch.mkdir()
    disk.fill(ROOM)  # Python's tempfile falls back to /tmp when TMPDIR cannot take a byte
    out = tmp_path / "out" / "pred.tif"
    before = snapshot(data.root)
    line = _failed(utom("predict", data.iso_model, volume, "--out", out, TMPDIR=scratch),
                   str(scratch), "temporary", "TMPDIR", NO_SPACE)
    assert f"{out}: " not in line  # the output is not what ran out of space
    assert not out.parent.exists()
    assert list(scratch.iterdir()) == []  # the scratch store is gone
    assert snapshot(data.root) == before


@pytest.mark.parametrize("target", ["pred.tif", "pred.ome.zarr", "pred.ome.tif", "pred.png",
                                    "train", "run"])
def test_a_read_only_file_system(disk, data, target):
    disk.read_only()
    out = disk.work / target
    if target == "train":
        result = utom(*_train(data, out))
    elif target == "run":
        result = utom("run", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", out, *TINY)
    else:
        result = utom("predict", data.model, data.a[0], "--out", out)
    _failed(result, str(out), READ_ONLY)
    assert list(disk.work.iterdir()) == []


def _logged(run: Path) -> list[int]:
    """Iterations logged so far: none while the old output is being moved aside."""
    try:
        return iterations_logged(run)
    except FileNotFoundError:
        return []


def test_a_disk_filling_while_run_overwrite_trains_keeps_the_old_output(disk, data, tmp_path):
    """Another writer fills the disk to the last byte while ``utom run --overwrite`` trains,
    after its first checkpoint: the old output is back as it was (putting it back writes
    nothing), and one line names the failed new run kept beside it, which resumes once
    there is room."""
    out = disk.work / "out"
    run = ["run", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", out, *TINY]
    assert utom(*run, "--iterations", "2").code == 0
    before = snapshot(out)
    proc = spawn([*run, "--iterations", "5000", "--set", "log_every=1", "--overwrite"], tmp_path)
    # the old run logged 2 iterations and the smoke budget checkpoints at 3
    wait_for(lambda: len(_logged(out / "run")) >= 5, proc, timeout=180)
    disk.fill(0)
    try:
        code = proc.wait(120)
    finally:
        proc.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert snapshot(out) == before, err
    (kept,) = disk.work.glob("out.failed-*")
    line = _failed(Result(code, "", err), NO_SPACE)
    assert f"the previous output is back in place and the failed new run is kept in {kept}: " \
        f"continue it with `utom train denoise --resume --out {kept / 'run'}`" in line, line
    assert str(out / "run") not in line  # what it names of the new run is in the kept one

    disk.free()
    checkpoint = kept / "run" / "checkpoints" / "last.pt"
    more = _iteration(checkpoint) + 3  # however far it got before the disk was full
    resumed = utom("train", "denoise", "--resume", "--out", kept / "run", "--iterations", more)
    assert resumed.code == 0, resumed.err
    assert _iteration(checkpoint) == more


def test_run_overwrite_on_a_disk_already_full_keeps_the_old_output(disk, data):
    """Not even the new output's marker fits: one line, and the old output is where it was,
    nothing hidden beside it."""
    out = disk.work / "out"
    run = ["run", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", out, *TINY,
           "--iterations", "2"]
    assert utom(*run).code == 0
    before = snapshot(disk.work)
    disk.fill(0)
    _failed(utom(*run, "--overwrite"), str(out), NO_SPACE)
    assert snapshot(disk.work) == before
