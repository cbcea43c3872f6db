"""The reader gives back what utom wrote: pixels, levels, pixel size, sensible contrast."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from napari_utom import reader
from PIL import Image

from utom_core import trained
from utom_core.errors import InputError
from utom_core.io.base import ImageInfo
from utom_core.io.omezarr import OmeZarrWriter


def write(path, data, pixel_size=None, chunk=64):
    """An OME-Zarr written by utom's own (streamed, pyramid-building) writer."""
    sink = OmeZarrWriter().create(path, ImageInfo(data.shape, data.dtype, pixel_size or {}),
                                  chunk=chunk)
    sink.write(tuple(slice(0, n) for n in data.shape[1:]), data)
    sink.commit()
    return path


def test_ome_zarr_round_trip_2d_16_bit(tmp_path, make_napari_viewer):
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 5000, (1, 300, 200), dtype=np.uint16)
    data[0, :3, :3] = 65535  # a few hot pixels must not set the contrast
    path = write(tmp_path / "pred.ome.zarr", data, {"y": 0.5, "x": 0.25})
    assert reader.get_reader(str(path)) is reader.read_ome_zarr
    [(levels, meta, kind)] = reader.read_ome_zarr(str(path))
    assert kind == "image" and meta["multiscale"] and len(levels) == 4  # 300 → 150 → 75 → 38
    np.testing.assert_array_equal(np.asarray(levels[0]), data[0])
    assert [lv.shape for lv in levels] == [(300, 200), (150, 100), (75, 50), (38, 25)]
    assert meta["scale"] == [0.5, 0.25] and meta["units"] == ["micrometer"] * 2
    low, high = meta["contrast_limits"]
    assert 1000 <= low < high <= 5000

    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-utom")
    assert layer.multiscale and layer.name == "pred"
    np.testing.assert_array_equal(np.asarray(layer.data[0]), data[0])
    np.testing.assert_allclose(layer.scale, [0.5, 0.25])
    assert [str(u) for u in layer.units] == ["micrometer"] * 2
    assert layer.contrast_limits == pytest.approx([low, high])


def test_ome_zarr_volume_channels_become_layers(tmp_path):
    data = np.random.default_rng(1).random((2, 5, 40, 30), dtype=np.float32)
    path = write(tmp_path / "vol.ome.zarr", data, {"z": 2.0, "y": 0.5, "x": 0.5})
    layers = reader.read_ome_zarr(str(path))
    assert [meta["name"] for _, meta, _ in layers] == ["vol [0]", "vol [1]"]
    for c, (array, meta, _) in enumerate(layers):
        assert not meta["multiscale"]  # fits one chunk: a single level
        np.testing.assert_array_equal(np.asarray(array), data[c])
        assert meta["scale"] == [2.0, 0.5, 0.5] and meta["axis_labels"] == ("z", "y", "x")


def test_ome_zarr_rgb(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, (3, 50, 60), dtype=np.uint8)
    [(array, meta, _)] = reader.read_ome_zarr(str(write(tmp_path / "he.ome.zarr", data)))
    assert meta["rgb"] and meta["units"] == ["pixel"] * 2
    np.testing.assert_array_equal(np.asarray(array), np.moveaxis(data, 0, -1))


def test_incomplete_store_is_refused(tmp_path):
    path = write(tmp_path / "cut.ome.zarr", np.ones((1, 200, 200), np.uint16))
    next(p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json").unlink()
    with pytest.raises(InputError, match="chunks of array '0' are missing"):
        reader.read_ome_zarr(str(path))


def png(path, shape, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*shape, 3), value, np.uint8)).save(path)


def test_run_directory_opens_previews_and_curve(tmp_path, run_dir, make_napari_viewer):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    png(run / "previews" / "a2b_0000200.png", (20, 50), 2)
    png(run / "previews" / "a2b_0000100.png", (20, 50), 1)
    png(run / "previews" / "b2a_0000100.png", (20, 50), 3)
    png(run / "learning_curve.png", (30, 40), 4)
    assert reader.get_reader(str(run)) is reader.read_run
    viewer = make_napari_viewer()
    layers = viewer.open(str(run), plugin="napari-utom")
    assert [layer.name for layer in layers] == ["run a2b previews", "run b2a previews",
                                                "run learning_curve"]
    a2b = layers[0]
    assert a2b.rgb and a2b.data.shape == (2, 20, 50, 3)
    assert a2b.data[0, 0, 0, 0] == 1 and a2b.data[1, 0, 0, 0] == 2  # iteration order
    assert a2b.metadata["iterations"] == [100, 200]
    assert layers[2].data.shape == (30, 40, 3)


def test_other_paths_are_left_to_other_readers(tmp_path, run_dir, image):
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    (tmp_path / "image.tif").write_bytes(b"II*\0")
    for path in (plain, tmp_path / "image.tif", tmp_path, run_dir):  # run_dir: nothing to show
        assert reader.get_reader(str(path)) is None
    assert reader.get_reader([str(plain), str(run_dir)]) is None


def test_run_markers_are_utoms():
    assert reader.RUN_FILES == (trained.MODEL_FILE, trained.META_FILE)
    assert reader.PREVIEW_DIR == trained.TRAINING_PREVIEW_DIR
