"""The dock widget on a headless viewer: run info, the saliency preview, predictions in a
worker thread (2D, 3D, dask-backed, to OME-Zarr) and Cancel."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
from conftest import utom
from napari_utom.widget import UtomWidget
from PIL import Image
from qtpy.QtCore import QTimer
from reliability.checks import leftovers

from utom_core.io import read_image
from utom_core.trained import load_run

WAIT_MS = 120_000


@pytest.fixture
def widget(make_napari_viewer, run_dir):
    viewer = make_napari_viewer()
    widget = UtomWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.load_run(run_dir)
    return widget


def finish(qtbot, widget):
    """Wait for the prediction running in the worker thread."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def test_run_shows_task_domains_and_thresholds(widget, run_dir):
    _, meta, _ = load_run(run_dir)
    text = widget.info.text()
    assert "task: denoise" in text
    for domain in (meta.domain_a, meta.domain_b):
        assert domain.name in text
    assert "threshold 3000" in text
    assert widget.threshold.value() == meta.threshold_a  # exactly: the preview uses it


def test_bad_run_is_one_line_and_keeps_the_chosen_run(widget, run_dir, tmp_path):
    widget.load_run(tmp_path)
    assert widget.status.text().startswith("error: ") and "\n" not in widget.status.text()
    assert "not a run directory" in widget.status.text()
    assert widget.run_path == run_dir


def overlay_mask(png) -> np.ndarray:
    """Content pixels of ``utom threshold --preview``: tinted magenta, where gray has R = G."""
    rgb = np.asarray(Image.open(png)).astype(int)
    return (rgb[..., 0] != rgb[..., 1]).astype(np.uint8)


def test_preview_is_the_saliency_mask(widget, image, tmp_path):
    meta = widget.meta
    layer = widget.viewer.add_image(image, name="img")
    widget.preview()
    mask = widget.viewer.layers["img content"]
    expected = meta.domain_a.content_map(image[None], meta.normalisation_a, meta.threshold_a)
    np.testing.assert_array_equal(mask.data, expected > 0.5)
    assert 0 < mask.data.mean() < 1

    # the slider, in raw units, re-draws the preview already shown; and `utom threshold`
    # draws the same mask (domain B: the one without smoothing, where its own image-fitted
    # normalisation cannot move a pixel across the threshold)
    widget.domain_combo.setCurrentIndex(1)
    widget.viewer.layers.selection.active = layer
    widget.threshold.setValue(9000.5)
    tifffile.imwrite(tmp_path / "img.tif", image)
    utom("threshold", str(tmp_path / "img.tif"), "--task", "denoise", "--domain", "b",
         "--value", "9000.5", "--preview", str(tmp_path / "mask.png"))
    cli_mask = overlay_mask(tmp_path / "mask.png")
    np.testing.assert_array_equal(mask.data, cli_mask)
    np.testing.assert_array_equal(mask.data, meta.domain_b.content_map(
        image[None], meta.normalisation_b, 9000.5) > 0.5)
    assert 0 < cli_mask.mean() < 1


@pytest.fixture(scope="module")
def expected(tmp_path_factory, run_dir):
    """What `utom predict` writes at its defaults (``--overlap auto``) for a 2D image, a volume
    and a large image (tile 64: tiled, so the overlap is measured)."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(3)
    images = {"plane": rng.integers(100, 20000, (96, 96), dtype=np.uint16),
              "volume": rng.integers(100, 20000, (5, 40, 40), dtype=np.uint16),
              "large": rng.integers(100, 20000, (200, 260), dtype=np.uint16)}
    for name, data in images.items():
        tifffile.imwrite(root / f"{name}.tif", data, imagej=True,
                         metadata={"axes": "ZYX"[-data.ndim:]})
    for names, tile in ((("plane", "volume"), "512"), (("large",), "64")):
        utom("predict", str(run_dir), *(str(root / f"{n}.tif") for n in names),
             "--out", str(root / f"out{tile}"), "--tile", tile)
    return {name: (data, read_image(root / f"out{64 if name == 'large' else 512}" /
                                    f"{name}.tif")[0]) for name, data in images.items()}


@pytest.mark.parametrize("name", ["plane", "volume"])
def test_predicts_like_utom_predict_without_freezing(widget, qtbot, expected, name):
    data, prediction = expected[name]
    widget.viewer.add_image(data, name=name, scale=(0.5,) * data.ndim)
    steps = []
    widget.progressed.connect(lambda done, total: steps.append((done, total)))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    widget.predict()
    assert widget.worker is not None and not widget.predict_button.isEnabled()
    finish(qtbot, widget)
    timer.stop()
    result = widget.viewer.layers[f"{name} (denoise a2b)"]
    np.testing.assert_array_equal(result.data, prediction)
    np.testing.assert_allclose(result.scale, (0.5,) * data.ndim)
    assert ticks, "the event loop did not run during the prediction"
    assert steps and steps[-1][0] == steps[-1][1] == widget.progress.maximum()
    assert widget.progress.value() == widget.progress.maximum()
    assert widget.status.text().startswith("added ") and widget.predict_button.isEnabled()


def test_dask_layer_is_tiled_and_streamed_to_ome_zarr(widget, qtbot, expected, tmp_path):
    data, prediction = expected["large"]
    reads = []

    def counted(block):
        reads.append(block.size)
        return block

    lazy = da.from_array(data, chunks=(64, 64)).map_blocks(counted, dtype=data.dtype)
    widget.viewer.add_image(lazy, name="large", multiscale=False)
    widget.tile.setValue(64)
    widget.write_zarr.setChecked(True)
    widget.zarr_edit.setText(str(tmp_path / "large.ome.zarr"))
    steps = []
    widget.progressed.connect(lambda done, total: steps.append(total))
    reads.clear()
    widget.predict()
    finish(qtbot, widget)
    assert steps and steps[-1] > 1  # tiled, not predicted whole
    assert max(reads) <= 64 * 64  # read chunk by chunk, never the whole image
    result = widget.viewer.layers["large (denoise a2b)"]
    assert result.multiscale  # the OME-Zarr written, opened back with its levels
    np.testing.assert_array_equal(np.asarray(result.data[0]), prediction)
    np.testing.assert_array_equal(read_image(tmp_path / "large.ome.zarr")[0], prediction)


def test_existing_output_is_refused(widget, qtbot, image, tmp_path):
    taken = tmp_path / "taken.ome.zarr"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    widget.viewer.add_image(image, name="img")
    widget.write_zarr.setChecked(True)
    widget.zarr_edit.setText(str(taken))
    widget.predict()
    finish(qtbot, widget)
    assert widget.status.text() == f"error: {taken}: already exists; choose another path"
    assert [layer.name for layer in widget.viewer.layers] == ["img"]
    assert (taken / "mine.txt").read_text() == "keep"


def test_cancel_leaves_the_viewer_and_disk_as_they_were(widget, qtbot, tmp_path):
    volume = np.random.default_rng(4).integers(100, 20000, (200, 64, 64), dtype=np.uint16)
    layer = widget.viewer.add_image(volume, name="volume")
    widget.tile.setValue(32)
    widget.write_zarr.setChecked(True)
    widget.zarr_edit.setText(str(tmp_path / "never.ome.zarr"))
    widget.progressed.connect(widget.cancel_button.click)
    widget.predict()
    finish(qtbot, widget)
    widget.progressed.disconnect(widget.cancel_button.click)
    assert widget.status.text() == "cancelled: no layer was added and nothing was written"
    assert [layer.name for layer in widget.viewer.layers] == ["volume"]
    assert layer.data is volume and widget.viewer.layers.selection.active is layer
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and leftovers(tmp_path) == []
    assert widget.predict_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert widget.progress.value() == 0
    widget.write_zarr.setChecked(False)  # the viewer and the widget still work
    widget.predict()
    finish(qtbot, widget)
    assert "volume (denoise a2b)" in widget.viewer.layers


def test_layer_the_run_cannot_read_is_one_line(widget, qtbot):
    colour = np.zeros((40, 40, 3), np.uint8)
    widget.viewer.add_image(colour, name="colour", rgb=True)
    widget.predict()
    finish(qtbot, widget)
    refusal = "error: colour: has 3 channel(s) (an RGB layer of shape (40, 40, 3)); expected 1"
    assert widget.status.text() == refusal
    widget.preview()  # the content mask of a 1-channel domain: refused alike, not empty
    assert widget.status.text() == refusal
    assert [layer.name for layer in widget.viewer.layers] == ["colour"]


def test_isotropic_run_predicts_xz_and_yz_planes(make_napari_viewer, qtbot, iso_run_dir,
                                                  tmp_path):
    volume = np.random.default_rng(5).integers(100, 20000, (12, 30, 34), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "vol.tif", volume, imagej=True, metadata={"axes": "ZYX"})
    utom("predict", str(iso_run_dir), str(tmp_path / "vol.tif"), "--out",
         str(tmp_path / "out.tif"))  # at its defaults, as the widget predicts
    viewer = make_napari_viewer()
    widget = UtomWidget(viewer)
    widget.load_run(iso_run_dir)
    assert not widget.fidelity.isEnabled()  # no fidelity maps of XZ/YZ planes
    viewer.add_image(volume, name="vol")
    widget.predict()
    finish(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["vol (isotropic a2b)"].data,
                                  read_image(tmp_path / "out.tif")[0])


def test_large_prediction_goes_to_a_scratch_store(widget, qtbot, expected, monkeypatch):
    from napari_utom import jobs

    monkeypatch.setattr(jobs, "IN_MEMORY_BYTES", 0)  # as if the output were above 1 GiB
    data, prediction = expected["plane"]
    widget.viewer.add_image(data, name="plane")
    widget.predict()
    finish(qtbot, widget)
    result = widget.viewer.layers["plane (denoise a2b)"]
    assert isinstance(result.data, da.Array)  # read back lazily from the zarr store
    np.testing.assert_array_equal(np.asarray(result.data), prediction)


def test_the_job_is_utom_predict_at_its_defaults(run_dir, expected, tmp_path):
    """The widget's job and `utom predict` share one Predictor: on a tiled image, where
    ``--overlap auto`` measures the halo, the outputs are equal bit for bit (and the paper's
    fixed overlap, the widget's old one, would not be)."""
    import threading

    from napari_utom import jobs

    from utom_core.io.lazy import ArraySource

    data, prediction = expected["large"]
    source = ArraySource(tmp_path / "large", data[None], "cyx", {})
    layers = jobs.predict(source, jobs.Job(run=run_dir, tile=64), lambda done, total: None,
                          threading.Event())
    np.testing.assert_array_equal(np.asarray(layers[0][0]), prediction)
    tifffile.imwrite(tmp_path / "large.tif", data)
    utom("predict", str(run_dir), str(tmp_path / "large.tif"), "--out",
         str(tmp_path / "paper.tif"), "--tile", "64", "--overlap", "0.25")
    assert not np.array_equal(read_image(tmp_path / "paper.tif")[0], prediction)


def test_views_default_is_utom_predicts(widget, run_dir):
    """The widget still equals `utom predict` at its defaults: the same number of views."""
    from napari_utom import jobs

    from utom_core.commands.predict import predict_command

    default = next(p.default for p in predict_command.params if p.name == "views")
    assert widget.views.currentText() == default
    assert jobs.Job(run=run_dir).views is None  # the Predictor's default, utom predict's
    from utom_core.inference import PredictOptions

    assert PredictOptions().views == int(default)
    widget.views.setCurrentText("2")
    layer = widget.viewer.add_image(np.zeros((16, 16), np.uint16))
    assert widget.job(layer).views == 2


def test_fidelity_map_is_utom_predicts_over_the_prediction(widget, qtbot, expected, tmp_path):
    """With the box ticked the map comes too, equal to `utom predict --fidelity`'s, laid over
    the prediction in its fixed [0, 1] range."""
    data, _ = expected["plane"]
    tifffile.imwrite(tmp_path / "plane.tif", data)
    utom("predict", str(widget.run_path), str(tmp_path / "plane.tif"), "--out",
         str(tmp_path / "out.tif"), "--fidelity")
    widget.viewer.add_image(data, name="plane", scale=(0.5, 0.5))
    assert widget.fidelity.isEnabled()
    widget.fidelity.setChecked(True)
    widget.predict()
    finish(qtbot, widget)
    prediction, overlay = (widget.viewer.layers[f"plane (denoise a2b){s}"]
                           for s in ("", " fidelity"))
    np.testing.assert_array_equal(prediction.data, read_image(tmp_path / "out.tif")[0])
    np.testing.assert_array_equal(overlay.data, read_image(tmp_path / "out.fidelity.tif")[0])
    np.testing.assert_allclose(overlay.scale, prediction.scale)
    assert overlay.contrast_limits == [0.0, 1.0] and overlay.colormap.name == "utom fidelity"
    assert widget.viewer.layers.selection.active.name == "plane"  # Predict again: the input


def test_the_model_is_the_one_utom_run_predicted_with(make_napari_viewer, qtbot, run_dir,
                                                     expected, tmp_path):
    """A run whose task predicts with its best validation's model: the widget picks it as
    `utom run` did (`utom predict --checkpoint best`), and "last" is still there to choose."""
    from utom_core.checkpoints import load_torch, save_torch

    run = tmp_path / "run"
    run.mkdir()
    state = load_torch(run_dir / "model.pt")
    state["config"]["run_checkpoint"] = "best"
    save_torch(state, run / "model.pt")
    state["ema_ab"] = {k: v * 0.5 if v.is_floating_point() else v
                       for k, v in state["ema_ab"].items()}
    save_torch(state, run / "model_best.pt")
    data, last = expected["plane"]
    tifffile.imwrite(tmp_path / "plane.tif", data)
    utom("predict", str(run), str(tmp_path / "plane.tif"), "--out", str(tmp_path / "best.tif"),
         "--checkpoint", "best")
    widget = UtomWidget(make_napari_viewer())
    widget.load_run(run)
    assert widget.model.currentText() == "best"
    assert [widget.model.itemText(i) for i in range(widget.model.count())] == ["last", "best"]
    widget.viewer.add_image(data, name="plane")
    widget.predict()
    finish(qtbot, widget)
    result = widget.viewer.layers["plane (denoise a2b)"].data
    np.testing.assert_array_equal(result, read_image(tmp_path / "best.tif")[0])
    assert not np.array_equal(result, last)


def test_what_is_missing_is_said(make_napari_viewer, run_dir):
    """No run: the widget says so (and offers no threshold to go back to); a run but a
    Labels layer current: it names the layer."""
    viewer = make_napari_viewer()
    widget = UtomWidget(viewer)
    assert not widget.reset_button.isEnabled()
    viewer.add_image(np.zeros((16, 16), np.uint16), name="plane")
    widget.predict()
    assert widget.status.text() == "error: choose a run first (Choose run…)"
    widget.load_run(run_dir)
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="mask")
    widget.preview()
    assert widget.status.text() == "error: select an image layer (mask is a Labels layer)"


def test_a_layer_for_the_other_direction_is_named(make_napari_viewer, tmp_path):
    """An RGB layer predicted a2b on a 1 → 3-channel run: the refusal names the direction
    that reads it."""
    from reliability.checks import save_model

    from utom_tasks.stain_he import TASK

    run = save_model(tmp_path / "stain", TASK.domain_a, TASK.domain_b, "stain-he")
    widget = UtomWidget(make_napari_viewer())
    widget.load_run(run)
    widget.viewer.add_image(np.zeros((40, 40, 3), np.uint8), name="he", rgb=True)
    widget.predict()
    assert widget.status.text() == (
        "error: he: has 3 channel(s) (an RGB layer of shape (40, 40, 3)); expected 1 "
        f"(direction b2a reads {TASK.domain_b.name}: 3 channel(s))")
    widget.viewer.add_image(np.zeros((40, 40, 4), np.uint8), name="rgba", rgb=True)
    widget.predict()  # RGBA: counted as it is, and no direction reads 4
    assert widget.status.text() == ("error: rgba: has 4 channel(s) (an RGBA layer of shape "
                                    "(40, 40, 4)); expected 1")
