"""A refused write fails with one clear line and keeps earlier results: the faults a real
small file system cannot stage at the right moment.

A full disk for real (a checkpoint, a prediction, the temporary folder) and a read-only file
system are in ``test_real_full_disk.py``. Tests run as root, where ``chmod 0o555`` does not stop
writes, so the failures here are injected where the operating system would report them: the
rename, the file creation, the log and preview writes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from reliability.checks import TINY, Data, leftovers, one_line_error, snapshot

import utom_core.training.runlog
from utom_core import trained
from utom_core.evaluation.figures import panels as previews
from utom_core.io import tiff

CHECKPOINT = trained.CHECKPOINT_FILE


def full(filename: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(filename)] if filename else []))


def _nth_call_fails(monkeypatch, owner, name: str, n: int, error: OSError,
                    when=lambda *args: True) -> list:
    """From its ``n``-th matching call on, ``owner.name`` raises ``error``."""
    original, calls = getattr(owner, name), []

    def patched(*args, **kwargs):
        if when(*args):
            calls.append(args)
            if len(calls) >= n:
                raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    return calls


def _train(d: Data, run: Path, *extra) -> list:
    return ["train", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", run, *TINY,
            "--iterations", "6", "--set", "checkpoint_every=2", *extra]


def _checkpoint_iteration(run: Path) -> int:
    return torch.load(run / CHECKPOINT, weights_only=True)["iteration"]


FAULTS = {
    # the second checkpoint is written but cannot be renamed into place
    "checkpoint-rename": lambda mp: _nth_call_fails(
        mp, os, "replace", 1, OSError(errno.EROFS, os.strerror(errno.EROFS)),
        when=lambda src, dst: str(dst).endswith("last.pt") and "checkpoints" in str(dst)
        and _seen_first(dst)),
    "loss-log": lambda mp: _fail_log_after(mp, 2),  # the flush at iteration 4
    "preview": lambda mp: _nth_call_fails(mp, previews, "save_panel", 1, full("preview.png")),
}
_FIRST: set[str] = set()


def _seen_first(path) -> bool:
    """False on the first rename of a checkpoint (let it through), True after."""
    key = str(path)
    if key in _FIRST:
        return True
    _FIRST.add(key)
    return False


def _fail_log_after(monkeypatch, n: int) -> None:
    calls = []

    def fake_open(file, *args, **kwargs):
        if str(file).endswith(trained.LOG_FILE):
            calls.append(file)
            if len(calls) >= n:
                raise full(file)
        return open(file, *args, **kwargs)

    monkeypatch.setattr(utom_core.training.runlog, "open", fake_open, raising=False)


@pytest.mark.parametrize(("fault", "needles", "kept"), [
    ("checkpoint-rename", ("Read-only file system",), 2),
    ("loss-log", ("log.jsonl", "No space left", "checkpoint of iteration 2 is intact"), 2),
    ("preview", ("preview.png", "No space left", "no checkpoint was written yet"), None),
])
def test_training_stops_with_one_line_and_keeps_the_last_checkpoint(cli, tmp_path, data,
                                                                    monkeypatch, fault,
                                                                    needles, kept):
    _FIRST.clear()
    run = tmp_path / "run"
    extra = ("--set", "preview_every=1") if fault == "preview" else ()
    FAULTS[fault](monkeypatch)
    one_line_error(cli(*_train(data, run, *extra)), *needles)
    monkeypatch.undo()  # space is freed
    assert leftovers(run) == []
    if kept is None:
        assert not (run / CHECKPOINT).exists()
        return
    assert _checkpoint_iteration(run) == kept
    assert torch.load(run / trained.MODEL_FILE, weights_only=True)["iteration"] == kept
    result = cli("train", "denoise", "--resume", "--out", run)
    assert result.code == 0, result.err
    assert _checkpoint_iteration(run) == 6


def test_a_run_directory_that_cannot_be_created(cli, tmp_path, data, monkeypatch):
    run = tmp_path / "readonly" / "run"
    mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self == run:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    one_line_error(cli(*_train(data, run)), str(run), "cannot create", "Permission denied")
    assert not run.exists()


def test_prediction_into_a_folder_that_cannot_be_written(cli, tmp_path, data, monkeypatch):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((20, 20), 900, np.uint16))
    before = snapshot(tmp_path)
    _nth_call_fails(monkeypatch, tiff.tifffile, "imwrite", 1,
                    PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    one_line_error(cli("predict", data.model, image, "--out", tmp_path / "out" / "p.tif"),
                   "p.tif", "cannot create output", "Permission denied")
    assert snapshot(tmp_path) == before


def test_run_output_folder_that_cannot_be_created(cli, tmp_path, data, monkeypatch):
    out = tmp_path / "readonly" / "out"
    mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self == out:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    one_line_error(cli("run", "denoise", "--a", data.a[0], "--b", data.b[0], "--out", out,
                       *TINY), str(out), "Read-only file system")
    assert not out.exists()
