"""The reader gives back what utom wrote: pixels, levels, pixel size, sensible contrast."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from napari_utom import layers, reader, runs
from PIL import Image

from utom_core import run_folders, trained
from utom_core.errors import InputError
from utom_core.evaluation.figures import fidelity as fidelity_panel
from utom_core.inference import fidelity
from utom_core.io.base import ImageInfo
from utom_core.io.ometiff import TiledTiffSink
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


@pytest.mark.parametrize("level", ["0", "1"])
def test_incomplete_store_is_refused(tmp_path, level):
    path = write(tmp_path / "cut.ome.zarr", np.ones((1, 200, 200), np.uint16))
    next(p for p in (path / level).rglob("*") if p.is_file() and p.name != "zarr.json").unlink()
    with pytest.raises(InputError, match=f"1 of .* chunks of array '{level}' are missing"):
        reader.read_ome_zarr(str(path))


def test_ome_tiff_opens_as_multiscale_in_micrometers(tmp_path, make_napari_viewer):
    """utom's pyramidal OME-TIFF: every level, µm scale (napari's builtins show level 0 in
    pixels); tifffile, an independent reader, confirms the file has the pyramid."""
    data = np.random.default_rng(3).integers(0, 4000, (1, 300, 260), dtype=np.uint16)
    path = tmp_path / "pred.ome.tif"
    sink = TiledTiffSink(path, ImageInfo(data.shape, data.dtype, {"y": 0.5, "x": 0.5}), chunk=64)
    sink.write((slice(0, 300), slice(0, 260)), data)
    sink.commit()
    with tifffile.TiffFile(path) as tf:
        assert len(tf.series[0].levels) == 4
    assert reader.get_reader(str(path)) is reader.read_ome_tiff
    [layer] = make_napari_viewer().open(str(path), plugin="napari-utom")
    assert layer.multiscale and layer.name == "pred" and len(layer.data) == 4
    np.testing.assert_array_equal(np.asarray(layer.data[0]), data[0])
    assert [lv.shape for lv in layer.data] == [(300, 260), (150, 130), (75, 65), (38, 33)]
    np.testing.assert_allclose(layer.scale, [0.5, 0.5])
    assert [str(u) for u in layer.units] == ["micrometer"] * 2


def test_manifest_offers_the_reader_only_for_its_formats(tmp_path):
    """A plain .tif goes to napari's builtins without a "Choose reader" question."""
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()

    def offered(name):
        (tmp_path / name).write_bytes(b"II*\0")
        return "napari-utom" in {r.plugin_name for r in
                                 manager.iter_compatible_readers([str(tmp_path / name)])}
    assert not offered("image.tif") and not offered("image.TIFF") and not offered("a.png")
    assert offered("pred.ome.tif") and offered("pred.OME.TIFF")


def png(path, shape, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*shape, 3), value, np.uint8)).save(path)


def test_run_directory_opens_previews_and_curve(tmp_path, run_dir, make_napari_viewer):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    png(run / "previews" / "a2b_0000200.png", (20, 50), 2)
    png(run / "previews" / "a2b_0000100.png", (20, 50), 1)
    png(run / "previews" / "b2a_0000100.png", (20, 50), 3)
    png(run / "val_curve.png", (30, 40), 4)
    assert reader.get_reader(str(run)) is reader.read_run
    viewer = make_napari_viewer()
    layers = viewer.open(str(run), plugin="napari-utom")
    assert [layer.name for layer in layers] == [
        "run a2b previews", "run a2b previews iteration", "run b2a previews",
        "run b2a previews iteration", "run val_curve"]
    a2b, text = layers[0], layers[1]
    assert a2b.rgb and a2b.data.shape == (2, 20, 50, 3)
    assert a2b.data[0, 0, 0, 0] == 1 and a2b.data[1, 0, 0, 0] == 2  # iteration order
    assert a2b.metadata["iterations"] == [100, 200]
    viewer.dims.set_current_step(0, 1)
    assert list(text._view_text) == ["iteration 200"]  # the label drawn with slice 1
    # side by side: no panel covers another
    lefts = [layers[i].translate[-1] for i in (0, 2, 4)]
    assert lefts == [0, 50 + runs.GAP, 100 + 2 * runs.GAP]
    assert layers[4].data.shape == (30, 40, 3)


def test_huge_previews_are_read_lazily_and_shrunk(tmp_path, run_dir):
    """A 12000 × 12000 preview: nothing decoded on opening; shown at most PREVIEW_SIDE."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    big = np.zeros((12000, 12000, 3), np.uint8)
    big[:, 6000:] = 200
    (run / "previews").mkdir()
    Image.fromarray(big).save(run / "previews" / "a2b_0000100.png", compress_level=1)
    del big
    [(array, _, _), _text] = reader.read_run(str(run))
    assert array.shape == (1, 2000, 2000, 3)  # 12000 / 6: the factor under 2048 per side
    shown = np.asarray(array[0])
    assert shown.shape == (2000, 2000, 3) and shown[0, 999, 0] == 0 and shown[0, 1000, 0] == 200


def test_run_output_folder_opens_whole(tmp_path, run_dir, make_napari_viewer):
    """The folder `utom run` writes: its predictions side by side, each fidelity map over its
    prediction, the run's panels hidden below; one unit for all, the view on the predictions."""
    out = tmp_path / "out"
    shutil.copytree(run_dir, out / "run")
    png(out / "run" / "previews" / "a2b_0000100.png", (20, 50), 1)
    png(out / "run" / "previews" / "a2b_0000200.png", (20, 50), 2)
    (out / "utom.json").write_text('{"format": "utom-run-output/1"}')
    (out / "predictions").mkdir()
    one = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    tifffile.imwrite(out / "predictions" / "a.tif", one, imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "um"})
    doubt = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(40, 30)
    tifffile.imwrite(out / "predictions" / "a.fidelity.tif", doubt, imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "um"})
    write(out / "predictions" / "b.ome.zarr", one[None] * 2, {"y": 0.5, "x": 0.5})
    viewer = make_napari_viewer()
    layers = viewer.open(str(out), plugin="napari-utom")
    names = [layer.name for layer in layers]
    assert names == ["a", "a fidelity", "b", "run a2b_0000200"]  # the last preview alone
    assert [layer.visible for layer in layers] == [True, False, True, False]
    assert viewer.dims.ndim == 2  # no preview axis: no slider over the predictions
    assert np.asarray(layers[3].data).max() == 2
    np.testing.assert_array_equal(np.asarray(layers[0].data), one)
    np.testing.assert_array_equal(np.asarray(layers[1].data), doubt)
    np.testing.assert_array_equal(np.asarray(layers[2].data), one * 2)
    np.testing.assert_allclose(layers[0].scale, [0.5, 0.5])
    overlay = layers[1]  # on its prediction, in the map's own [0, 1] range
    np.testing.assert_allclose(overlay.scale, layers[0].scale)
    np.testing.assert_allclose(overlay.translate, layers[0].translate)
    assert overlay.contrast_limits == [0.0, 1.0] and overlay.colormap.name == "utom fidelity"
    assert layers[2].translate[-1] >= 30 * 0.5  # beside "a", not on it
    assert len({str(unit) for layer in layers for unit in layer.units[-2:]}) == 1
    # napari fits its view to the first layers it adds: the predictions, not the panels
    y, x = viewer.scene.camera.center[-2:]
    assert 0 <= y <= 40 * 0.5 and 0 <= x <= layers[2].translate[-1] + 30 * 0.5


def test_a_fidelity_map_opened_alone_is_an_overlay(tmp_path, make_napari_viewer):
    """`utom predict --fidelity`'s pair opened one after the other: the map over its
    prediction, in its cyan on the fixed 0–1 range."""
    one = np.arange(40 * 30, dtype=np.uint16).reshape(1, 40, 30)
    doubt = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(1, 40, 30)
    write(tmp_path / "s.ome.zarr", one, {"y": 0.5, "x": 0.5})
    write(tmp_path / "s.fidelity.ome.zarr", doubt, {"y": 0.5, "x": 0.5})
    viewer = make_napari_viewer()
    for name in ("s.ome.zarr", "s.fidelity.ome.zarr"):
        viewer.open(str(tmp_path / name), plugin="napari-utom")
    prediction, overlay = viewer.layers
    assert (prediction.name, overlay.name) == ("s", "s fidelity") and overlay.visible
    assert overlay.contrast_limits == [0.0, 1.0] and overlay.colormap.name == "utom fidelity"
    np.testing.assert_allclose(overlay.scale, prediction.scale)


def test_other_paths_are_left_to_other_readers(tmp_path, run_dir, image):
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    (tmp_path / "image.tif").write_bytes(b"II*\0")
    tifffile.imwrite(tmp_path / "plain.ome.tif", image, ome=False)  # no OME header
    for path in (plain, tmp_path / "image.tif", tmp_path / "plain.ome.tif", tmp_path,
                 run_dir):  # run_dir: nothing to show
        assert reader.get_reader(str(path)) is None
    assert reader.get_reader([str(plain), str(run_dir)]) is None


def test_run_markers_are_utoms():
    assert runs.RUN_FILES == (trained.MODEL_FILE, trained.META_FILE)
    assert runs.PREVIEW_DIR == trained.TRAINING_PREVIEW_DIR
    assert (runs.OUTPUT_FORMAT, runs.OUTPUT_MARKER) == (run_folders.RUN_OUTPUT_FORMAT,
                                                        run_folders.MARKER_FILE)
    assert (runs.RUN_SUBDIR, runs.PREDICTION_DIR) == (run_folders.RUN_SUBDIR,
                                                      run_folders.PREDICTION_DIR)
    assert runs.FIDELITY == fidelity.SUFFIX
    assert np.allclose(np.array(layers.FIDELITY_TINT) * 255, fidelity_panel.TINT)
    assert layers.FIDELITY_OPACITY == fidelity_panel.OPACITY
