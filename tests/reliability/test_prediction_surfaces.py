"""Nothing lost on the prediction surfaces, with real faults: ``--overwrite`` of `utom predict`
and `utom export` replaces only what utom writes there; inputs with missing data or broken
metadata are refused or read right; a resumed cluster job continues only its own work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from ome_types import from_xml
from reliability.checks import Data, one_line_error, snapshot, write_zarr

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.inference import PredictOptions, Predictor
from utom_core.inference.blocks import ModelSpec
from utom_core.inference.dask import JOB_FILE, FileJob, job_store
from utom_core.io import open_image, read_image, writer_for
from utom_core.io.base import ImageInfo
from utom_core.plugins import get_registry
from utom_core.trained import load_model

RNG = np.random.default_rng(3)


# --overwrite replaces only what utom writes ------------------------------------------------

def _users_things(path: Path, kind: str) -> None:
    """What a user may keep at an output's path."""
    if kind == "folder":
        path.mkdir()
        (path / "notes.txt").write_text("years of work")
        (path / "sub").mkdir()
        (path / "sub" / "data.csv").write_text("1,2")
    elif kind == "other format":
        path.write_bytes(b"%PDF-1.7 a thesis")
    elif kind == "link":
        target = path.with_name("target.tif")
        tifffile.imwrite(target, np.zeros((4, 4), np.uint16))
        path.symlink_to(target)
    elif kind == "store with a user file":
        write_zarr(path, np.ones((1, 32, 32), np.uint16))
        (path / "notes.txt").write_text("mine")


@pytest.mark.parametrize(("name", "kind"), [
    ("o.ome.tif", "folder"), ("o.tif", "folder"), ("o.tif", "other format"),
    ("o.ome.tif", "link"), ("o.ome.zarr", "folder"), ("o.ome.zarr", "other format"),
    ("o.ome.zarr", "link"), ("o.ome.zarr", "store with a user file"), ("o.png", "folder"),
])
def test_predict_overwrite_refuses_what_utom_does_not_write(cli, data: Data, tmp_path, name,
                                                            kind):
    out = tmp_path / name
    _users_things(out, kind)
    before = snapshot(tmp_path)
    result = cli("predict", data.model, data.a[0], "--out", out, "--overwrite", "--tile", "64")
    one_line_error(result, str(out), "left as it is")
    assert result.code == 2
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["o.tif", "o.ome.tif", "o.ome.zarr"])
def test_predict_overwrite_replaces_what_utom_wrote(cli, data: Data, tmp_path, name):
    out = tmp_path / name
    first = cli("predict", data.model, data.a[1], "--out", out, "--tile", "64")
    assert first.code == 0, first.err
    again = cli("predict", data.model, data.a[0], "--out", out, "--overwrite", "--tile", "64")
    assert again.code == 0, again.err
    single = tmp_path / f"fresh-{name}"
    assert cli("predict", data.model, data.a[0], "--out", single, "--tile", "64").code == 0
    np.testing.assert_array_equal(read_image(out), read_image(single))


@pytest.mark.parametrize("kind", ["other format", "link"])
def test_export_overwrite_refuses_what_is_not_a_package(cli, data: Data, tmp_path, kind):
    out = tmp_path / "model.zip"
    _users_things(out, kind)
    before = snapshot(tmp_path)
    result = cli("export", data.model, "--bioimageio", out, "--overwrite")
    one_line_error(result, str(out), "left as it is")
    assert snapshot(tmp_path) == before


# inputs: missing data, levels out of order, meaningless pixel sizes ------------------------

def _sharded(path: Path, shape: tuple[int, ...]) -> Path:
    """A store written with zarr 3's sharding (4 chunks of 16 a shard side), edge shards
    partly outside the image."""
    data = RNG.integers(1000, 20000, shape).astype(np.uint16)
    sink = writer_for(path).create(path, ImageInfo(shape, data.dtype), chunk=16, shard=2)
    sink.write(tuple(slice(0, n) for n in shape[1:]), data)
    sink.commit()
    assert zarr.open_array(str(path / "0")).shards is not None
    return path


@pytest.mark.parametrize("shape", [(1, 100, 90), (1, 3, 70, 90)])
@pytest.mark.parametrize("which", [0, -1])
def test_a_sharded_input_missing_a_shard_is_refused(cli, tmp_path, data: Data, shape, which):
    store = _sharded(tmp_path / "in.ome.zarr", shape)
    shards = sorted(p for p in (store / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    shards[which].unlink()  # an interrupted copy: one shard file short
    result = cli("predict", data.model, store, "--out", tmp_path / "out", "--tile", "64")
    one_line_error(result, str(store), "1 of", "shards", "missing")
    assert not (tmp_path / "out").exists()


def test_levels_listed_coarse_first_still_predict_full_resolution(cli, tmp_path, data: Data):
    store = write_zarr(tmp_path / "in.ome.zarr", RNG.integers(1000, 20000, (1, 200, 150)
                                                              ).astype(np.uint16), chunk=32)
    group = zarr.open_group(str(store), mode="r+")
    attrs = group.attrs.asdict()
    datasets = attrs["ome"]["multiscales"][0]["datasets"]
    assert len(datasets) > 1
    attrs["ome"]["multiscales"][0]["datasets"] = datasets[::-1]  # coarse first
    group.update_attributes(attrs)
    assert open_image(store).info.shape == (1, 200, 150)
    result = cli("predict", data.model, store, "--out", tmp_path / "o.tif", "--tile", "64")
    assert result.code == 0, result.err
    assert read_image(tmp_path / "o.tif").shape == (1, 200, 150)


def _bad_sizes(path: Path, value: str) -> Path:
    """An OME-TIFF whose XML gives PhysicalSizeX = value (edited in place, same length)."""
    tifffile.imwrite(path, RNG.integers(1000, 20000, (48, 48)).astype(np.uint16), ome=True,
                     metadata={"PhysicalSizeX": 0.125, "PhysicalSizeY": 0.125, "axes": "YX"})
    raw = path.read_bytes()
    assert raw.count(b'PhysicalSizeX="0.125"') == 1
    path.write_bytes(raw.replace(b'PhysicalSizeX="0.125"',
                                 f'PhysicalSizeX="{value}"'.encode().ljust(21)))
    return path


@pytest.mark.parametrize("value", ["-0.25", "NaN", "0", "-inf"])
@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".ome.zarr"])
def test_a_meaningless_pixel_size_is_dropped_with_a_note(cli, tmp_path, data: Data, value,
                                                         suffix):
    image = _bad_sizes(tmp_path / "in.ome.tif", value)
    out = tmp_path / f"out{suffix}"
    result = cli("predict", data.model, image, "--out", out, "--tile", "64")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert f"note: {image}: pixel size x" in result.err
    sizes = open_image(out).info.pixel_size
    assert "x" not in sizes and sizes.get("y", 0.125) == 0.125
    if suffix == ".ome.tif":
        with tifffile.TiffFile(out) as tif:
            pixels = from_xml(tif.ome_metadata).images[0].pixels  # validates the XML
        assert pixels.physical_size_x is None and pixels.physical_size_y == 0.125


def test_a_negative_imagej_spacing_is_dropped(cli, tmp_path, data: Data):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, RNG.integers(1000, 20000, (2, 40, 40)).astype(np.uint16),
                     imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": -3.0, "unit": "um"})
    out = tmp_path / "out.ome.tif"
    result = cli("predict", data.model, image, "--out", out, "--tile", "64")
    assert result.code == 0, result.err
    assert "pixel size z" in result.err
    with tifffile.TiffFile(out) as tif:
        pixels = from_xml(tif.ome_metadata).images[0].pixels
    assert pixels.physical_size_z is None and pixels.physical_size_x == 0.5


# a resumed cluster job continues only its own work -----------------------------------------

pytest.importorskip("distributed", reason="needs utom[distributed]")


def _left_by_a_killed_job(model_dir: Path, image: Path, out: Path) -> Path:
    """The store a job killed right after it started leaves beside ``out`` (as FileJob, the
    first thing ``utom predict --scheduler`` does, made it)."""
    from utom_core.commands.predict import load_on_worker

    model_file = model_dir / trained.MODEL_FILE
    model = load_model(model_file, "a2b", ema=True, device="cpu",
                       build_generator=get_registry().build_generator)
    predictor = Predictor(model, PredictOptions(tile=64))
    source = predictor.open(image)
    try:
        spec = ModelSpec(str(model_file.resolve()), "a2b", True, "cpu",
                         predictor.tile_options([source]), load_on_worker)
        FileJob(source, out, predictor, spec, resume=False, overwrite=False)
    finally:
        source.close()
    assert (job_store(out) / JOB_FILE).is_file()
    return job_store(out)


def _rewrite_in_place(model_file: Path) -> None:
    """Other weights written into the same file, its size and time kept (``cp -p`` over it)."""
    stat = model_file.stat()
    state = torch.load(model_file, weights_only=True)
    for key in ("g_ab", "ema_ab"):  # in place: tensors the file shares stay shared
        for value in state[key].values():
            if value.is_floating_point():
                value.add_(0.5)
    other = model_file.with_name("other.pt")
    save_torch(state, other)
    with open(model_file, "r+b") as handle:  # as cp writes: the same file, new bytes
        handle.write(other.read_bytes())
    other.unlink()
    assert model_file.stat().st_size == stat.st_size
    os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_resume_after_the_model_was_rewritten_in_place_is_refused(cli, tmp_path, data: Data):
    model = shutil.copytree(data.model, tmp_path / "model")
    out = tmp_path / "o.ome.zarr"
    store = _left_by_a_killed_job(model, data.a[0], out)
    _rewrite_in_place(model / trained.MODEL_FILE)
    before = snapshot(store)
    result = cli("predict", model, data.a[0], "--out", out, "--tile", "64",
                 "--scheduler", "local:1", "--resume")
    one_line_error(result, str(out), "other inputs, model or options", "--overwrite")
    assert snapshot(store) == before and not out.exists()


@pytest.mark.parametrize("damage", ["zarr.json", "0/zarr.json", JOB_FILE])
@pytest.mark.parametrize("how", ["missing", "garbled"])
def test_resume_on_a_damaged_job_store_is_one_line(cli, tmp_path, data: Data, damage, how):
    out = tmp_path / "o.ome.zarr"
    store = _left_by_a_killed_job(data.model, data.a[0], out)
    if how == "missing":
        (store / damage).unlink()
    else:
        (store / damage).write_bytes((store / damage).read_bytes()[:25])
    result = cli("predict", data.model, data.a[0], "--out", out, "--tile", "64",
                 "--scheduler", "local:1", "--resume")
    one_line_error(result, str(out), "--overwrite")
    assert store.is_dir() and not out.exists()


def test_resume_refuses_an_output_it_did_not_write(cli, tmp_path, data: Data):
    out = tmp_path / "o.ome.zarr"
    assert cli("predict", data.model, data.a[0], "--out", out, "--tile", "64").code == 0
    before = snapshot(tmp_path)
    result = cli("predict", data.model, data.a[0], "--out", out, "--tile", "64",
                 "--scheduler", "local:1", "--resume")
    one_line_error(result, str(out), "not as this job wrote it", "--overwrite")
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_resume_skips_its_own_outputs_saying_so_and_refuses_another_models(cli, tmp_path,
                                                                           data: Data):
    model = shutil.copytree(data.model, tmp_path / "model")
    out = tmp_path / "out"
    job = ("predict", model, data.a[0], data.a[1], "--out", out, "--tile", "64",
           "--scheduler", "local:1")
    assert (first := cli(*job)).code == 0, first.err
    (out / "a1.tif").unlink()  # the job was interrupted before its second output
    kept = snapshot(out / "a0.tif")
    resumed = cli(*job, "--resume")
    assert resumed.code == 0, resumed.err
    assert f"{out / 'a0.tif'}: finished by this job before; skipped" in resumed.err
    assert snapshot(out / "a0.tif") == kept and (out / "a1.tif").is_file()

    _rewrite_in_place(model / trained.MODEL_FILE)  # another model at the same path
    one_line_error(cli(*job, "--resume"), str(out / "a0.tif"), "not as this job wrote it")
    assert snapshot(out / "a0.tif") == kept
