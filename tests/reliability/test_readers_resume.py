"""Readers never drop or relabel pixels silently, and a resumed run trains on its own files.

Every file here is real: multi-series TIFFs appended page by page as acquisition software does,
ImageJ hyperstacks, complex-valued TIFF and OME-Zarr, TIFF and PNG headers patched to declare
enormous sizes (nothing that large is ever allocated), and a run trained in one working folder
and resumed from another that holds different files of the same names.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from helpers import build_generator
from PIL import Image
from reliability.checks import (
    CLI,
    ONE_THREAD,
    TINY,
    Data,
    blob_image,
    leftovers,
    one_line_error,
    snapshot,
    write_zarr,
)

from utom_core import trained
from utom_core.errors import InputError
from utom_core.io import open_image, read_image

RNG = np.random.default_rng(13)


def frames(count: int, shape: tuple[int, ...] = (40, 40)) -> list[np.ndarray]:
    return [RNG.integers(100, 20000, shape, dtype=np.uint16) for _ in range(count)]


def append_pages(path: Path, pages: list[np.ndarray], **kwargs) -> Path:
    """One ``imwrite(..., append=True)`` per page: each page becomes its own series."""
    for page in pages:
        tifffile.imwrite(path, page, append=True, **kwargs)
    return path


def utom(args: list, cwd: Path) -> subprocess.CompletedProcess:
    """``utom ARGS`` in a fresh process in ``cwd`` (code and err set as the cli fixture's)."""
    result = subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **ONE_THREAD}, timeout=300)
    result.code, result.err = result.returncode, result.stderr
    return result


def predict(cli, model: Path, image: Path, out: Path):
    return cli("predict", model, image, "--out", out)


# --- 5: every page of a multi-series TIFF, with the axes the file declares -------------------

@pytest.mark.parametrize("shape", [(40, 40), (2, 40, 40)], ids=["frames", "volumes"])
def test_appended_series_are_all_read_in_order(tmp_path, shape):
    pages = frames(4, shape)
    path = append_pages(tmp_path / "acquired.tif", pages)
    assert len(tifffile.TiffFile(path).series) == 4  # what the test is about
    stacked = np.stack(pages).reshape(-1, 40, 40)
    source = open_image(path)
    try:
        assert source.info.shape == (1, len(stacked), 40, 40)
        np.testing.assert_array_equal(source.read((slice(2, 7), slice(None), slice(None)))[0],
                                      stacked[2:7])
    finally:
        source.close()
    np.testing.assert_array_equal(read_image(path)[0], stacked)


def test_appended_series_predict_every_page(cli, tmp_path, data: Data):
    path = append_pages(tmp_path / "acquired.tif", frames(3))
    out = tmp_path / "out.tif"
    result = predict(cli, data.model, path, out)
    assert result.code == 0, result.err
    assert read_image(out).shape == (1, 3, 40, 40)


@pytest.mark.parametrize(("second", "shown"), [
    (np.zeros((20, 40), np.uint16), "(20, 40)"),
    (np.zeros((40, 40), np.float32), "float32"),
], ids=["shape", "dtype"])
def test_series_that_differ_are_refused_in_one_line(cli, tmp_path, data: Data, second, shown):
    path = append_pages(tmp_path / "mixed.tif", [frames(1)[0], second])
    before = snapshot(tmp_path)
    line = one_line_error(predict(cli, data.model, path, tmp_path / "out.tif"), "mixed.tif",
                          shown)
    assert "(40, 40)" in line or "uint16" in line, line  # both series are described
    assert snapshot(tmp_path) == before


def test_reduced_resolution_preview_is_left_out(tmp_path):
    """A thumbnail page flagged as reduced (NewSubfileType 1) is no part of the image."""
    pages = frames(2)
    with tifffile.TiffWriter(tmp_path / "scan.tif") as tif:
        for page in pages:
            tif.write(page, metadata=None)
        tif.write(pages[0][::4, ::4], metadata=None, subfiletype=1)
    np.testing.assert_array_equal(read_image(tmp_path / "scan.tif")[0], np.stack(pages))


def test_differing_series_refused_by_open_image(tmp_path):
    path = append_pages(tmp_path / "mixed.tif", [frames(1)[0], frames(1, (24, 40))[0]])
    with pytest.raises(InputError, match="series"):
        open_image(path)


def test_tzyx_hyperstack_keeps_time_and_z_through_prediction(cli, tmp_path, data: Data):
    """2D domain: a stack of T×Z XY planes, predicted back into a TZYX hyperstack (time
    points are never relabelled as z slices)."""
    stack = np.stack([np.stack(frames(3)) for _ in range(2)])  # T Z Y X
    path = tmp_path / "tzyx.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TZYX"})
    source = open_image(path)
    try:
        assert source.info.shape == (1, 6, 40, 40)
        assert source.info.stack == (("T", 2), ("Z", 3))
        np.testing.assert_array_equal(source.read((slice(4, 5), slice(None), slice(None)))[0, 0],
                                      stack[1, 1])
    finally:
        source.close()
    out = tmp_path / "out.tif"
    result = predict(cli, data.model, path, out)
    assert result.code == 0, result.err
    with tifffile.TiffFile(out) as tf:
        assert (tf.series[0].axes, tf.series[0].shape) == ("TZYX", (2, 3, 40, 40))


@pytest.mark.parametrize(("axes", "shape"), [("TYX", (4, 40, 40)), ("TZYX", (2, 3, 40, 40))],
                         ids=["time-series", "hyperstack"])
def test_time_is_never_cut_as_z_for_xz_yz_planes(cli, tmp_path, data: Data, axes, shape):
    path = tmp_path / "timelapse.tif"
    tifffile.imwrite(path, RNG.integers(100, 20000, shape, dtype=np.uint16), imagej=True,
                     metadata={"axes": axes})
    before = snapshot(tmp_path)
    line = one_line_error(predict(cli, data.iso_model, path, tmp_path / "out.tif"),
                          "timelapse.tif")
    assert "T" in line.split("timelapse.tif", 1)[1], line  # names the time axis
    assert snapshot(tmp_path) == before


def test_plain_multipage_volume_still_cut_as_xz_yz(cli, tmp_path, data: Data):
    """A volume written without axis metadata (tifffile's default, pages 'Q') is z."""
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.stack(frames(5)))
    out = tmp_path / "out.tif"
    result = predict(cli, data.iso_model, path, out)
    assert result.code == 0, result.err
    assert read_image(out).shape == (1, 5, 40, 40)


# --- 7: complex pixels are refused, never cast to their real part ---------------------------

def _complex() -> np.ndarray:
    return (RNG.random((40, 40)) * 1000 + 1j * RNG.random((40, 40))).astype(np.complex64)


def _complex_tiff(folder: Path) -> Path:
    tifffile.imwrite(folder / "phase.tif", _complex())
    return folder / "phase.tif"


def _complex_zarr(folder: Path) -> Path:
    return write_zarr(folder / "phase.ome.zarr", _complex()[None], chunk=64)  # one level


@pytest.mark.parametrize("make", [_complex_tiff, _complex_zarr], ids=["tiff", "ome-zarr"])
def test_complex_images_are_refused(cli, tmp_path, data: Data, make):
    path = make(tmp_path)
    before = snapshot(tmp_path)
    one_line_error(predict(cli, data.model, path, tmp_path / "out.tif"), path.name, "complex")
    assert snapshot(tmp_path) == before
    with pytest.raises(InputError, match="complex"):
        open_image(path)


# --- 8: a header declaring enormous sizes is checked before anything is allocated ------------

def patch_tags(path: Path, values: dict[int, int]) -> Path:
    """Overwrite LONG/SHORT tag values of the first IFD in place (a classic TIFF)."""
    with tifffile.TiffFile(path) as tf:
        tags = {tag.code: tag for tag in tf.pages.first.tags.values()}
        order = tf.byteorder
    with open(path, "r+b") as handle:
        for code, value in values.items():
            tag = tags[code]
            handle.seek(tag.valueoffset)
            handle.write(struct.pack(order + {3: "H", 4: "I"}[tag.dtype], value))
    return path


WIDTH, LENGTH = 2**20, 2**19
"""Declared by the patched headers: 2**39 pixels, 1 TiB of uint16."""


def _one_strip_tiff(folder: Path) -> Path:
    """A compressed TIFF whose single strip declares 1 TiB (decoded whole to read any pixel)."""
    path = folder / "huge.tif"
    tifffile.imwrite(path, frames(1, (64, 64))[0], compression="zlib", rowsperstrip=64)
    return patch_tags(path, {256: WIDTH, 257: LENGTH, 278: LENGTH})


def test_huge_declared_strip_refused_at_open(tmp_path):
    with pytest.raises(InputError, match="memory"):
        open_image(_one_strip_tiff(tmp_path))


@pytest.mark.slow
def test_huge_declared_strip_refused_in_one_line_by_the_cli(tmp_path, data: Data):
    path = _one_strip_tiff(tmp_path)
    before = snapshot(tmp_path)
    result = utom(["predict", data.model, path, "--out", tmp_path / "out.tif"], tmp_path)
    assert result.code == 2, result.err
    one_line_error(result, "huge.tif", "memory")
    assert snapshot(tmp_path) == before


def test_huge_declared_tiled_tiff_streams(tmp_path):
    """Tiles are decoded one by one: a huge tiled image is not refused, its tiles read."""
    path = tmp_path / "tiled.tif"
    data = frames(1, (64, 64))[0]
    tifffile.imwrite(path, data, compression="zlib", tile=(16, 16))
    patch_tags(path, {256: WIDTH, 257: LENGTH})
    source = open_image(path)
    try:
        assert source.info.shape == (1, LENGTH, WIDTH)
        np.testing.assert_array_equal(source.read((slice(0, 16), slice(0, 16)))[0],
                                      data[:16, :16])
    finally:
        source.close()


def test_omezarr_declaring_a_huge_chunk_refused_at_open(tmp_path):
    """One stored chunk whose metadata declares 1 TiB: refused before zarr decodes it."""
    store = write_zarr(tmp_path / "huge.ome.zarr", frames(1, (32, 32))[0][None], chunk=32)
    meta_file = store / "0" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"] = [1, LENGTH, WIDTH]
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, LENGTH, WIDTH]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="memory"):
        open_image(store)


def _png_declaring(folder: Path, width: int, height: int) -> Path:
    """A valid 64×64 PNG whose IHDR (CRC fixed) declares ``width`` × ``height``."""
    path = folder / "declared.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("size", [(12000, 10000), (2**20, 2**20)], ids=["120MP", "1TP"])
def test_png_declaring_a_huge_size_is_one_line(cli, tmp_path, data: Data, size):
    path = _png_declaring(tmp_path, *size)
    before = snapshot(tmp_path)
    one_line_error(predict(cli, data.model, path, tmp_path / "out.tif"), "declared.png")
    assert snapshot(tmp_path) == before


# --- 6: a resumed run trains on the files it started with ------------------------------------

@pytest.fixture
def moved(tmp_path, data: Data, cli, monkeypatch):
    """A run trained from ``first/`` with relative paths, and ``second/`` holding other images
    under the same names; returns (first, second, run). The set-up trains in-process (a fresh
    interpreter costs seconds); the resumes under test run in real processes."""
    first, second, run = tmp_path / "first", tmp_path / "second", tmp_path / "run"
    for folder, index in ((first, 0), (second, 1)):
        folder.mkdir()
        shutil.copy(data.a[index], folder / "a.tif")
        shutil.copy(data.b[index], folder / "b.tif")
    with monkeypatch.context() as here:
        here.chdir(first)
        result = cli("train", "denoise", "--a", "a.tif", "--b", "b.tif", "--out", run, *TINY,
                     "--iterations", "2")
    assert result.code == 0, result.err
    return first, second, run


def recorded(run: Path) -> str:
    return (run / trained.META_FILE).read_text()


@pytest.mark.slow
def test_run_json_records_absolute_paths(moved):
    first, _, run = moved
    text = recorded(run)
    assert str(first / "a.tif") in text and str(first / "b.tif") in text


@pytest.mark.slow
def test_resume_from_another_folder_trains_on_the_original_files(moved):
    first, second, run = moved
    result = utom(["train", "denoise", "--resume", "--out", run, "--iterations", "3"], second)
    assert result.code == 0, result.err
    text = recorded(run)
    assert str(first / "a.tif") in text and str(second / "a.tif") not in text


@pytest.mark.parametrize("change", ["edited", "missing"])
@pytest.mark.slow
def test_resume_refuses_changed_or_missing_inputs(moved, change):
    first, second, run = moved
    if change == "edited":
        shutil.copy(second / "a.tif", first / "a.tif")  # same name and size, other pixels
    else:
        (first / "a.tif").unlink()
    before = snapshot(run)
    one_line_error(utom(["train", "denoise", "--resume", "--out", run, "--iterations", "3"],
                        second), str(first / "a.tif"), "--a")
    assert snapshot(run) == before and not leftovers(run)


@pytest.mark.slow
def test_resume_with_inputs_given_again_checks_their_fingerprints(moved):
    """From another folder holding other images under the run's names: refused, naming the
    file; the run's own images, moved there, resume and are recorded where they now are."""
    first, second, run = moved
    args = ["train", "denoise", "--resume", "--out", run, "--iterations", "3", "--a", "a.tif",
            "--b", "b.tif"]
    before = snapshot(run)
    one_line_error(utom(args, second), str(second / "a.tif"), "not an image the run trained on")
    assert snapshot(run) == before
    for name in ("a.tif", "b.tif"):
        shutil.move(first / name, second / name)
    result = utom(args, second)
    assert result.code == 0, result.err
    text = recorded(run)
    assert str(second / "a.tif") in text and str(second / "b.tif") in text


def _as_old_run(run: Path, a: str, b: str) -> None:
    """Rewrite the checkpoint and run.json as a utom without fingerprints wrote them."""
    old = {"inputs_a": [a], "inputs_b": [b]}
    checkpoint = run / trained.CHECKPOINT_FILE
    state = torch.load(checkpoint, weights_only=True)
    state["meta"] = {key: value for key, value in state["meta"].items()
                     if not key.startswith("fingerprint")} | old
    torch.save(state, checkpoint)
    (run / trained.META_FILE).write_text(json.dumps(state["meta"]))


@pytest.mark.slow
def test_old_run_with_relative_inputs_is_refused_on_resume(moved):
    _, second, run = moved
    _as_old_run(run, "a.tif", "b.tif")
    before = snapshot(run)
    one_line_error(utom(["train", "denoise", "--resume", "--out", run, "--iterations", "3"],
                        second), "a.tif", "relative", "--a")
    assert snapshot(run) == before


@pytest.mark.slow
def test_old_run_with_absolute_inputs_resumes(moved):
    first, second, run = moved
    _as_old_run(run, str(first / "a.tif"), str(first / "b.tif"))
    result = utom(["train", "denoise", "--resume", "--out", run, "--iterations", "3"], second)
    assert result.code == 0, result.err


@pytest.mark.slow
def test_old_model_files_still_load(tmp_path, data: Data):
    """model.pt files written before fingerprints (inputs as plain strings) still predict."""
    model = tmp_path / "old"
    shutil.copytree(data.model, model)
    state = torch.load(model / trained.MODEL_FILE, weights_only=True)
    state["meta"] = {**state["meta"], "inputs_a": ["a.tif"], "inputs_b": ["/data/b.tif"]}
    torch.save(state, model / trained.MODEL_FILE)
    predictor = trained.load_model(model, build_generator=build_generator)
    assert predictor.task == "denoise"
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, blob_image(RNG, 500, 40))
    out = tmp_path / "out.tif"
    result = utom(["predict", model, image, "--out", out], tmp_path)
    assert result.code == 0, result.err
