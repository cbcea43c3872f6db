"""The utom dock widget: pick a run, preview its content masks, predict the current layer.

Predictions run in a worker thread (``napari.qt.threading``) and report progress through a
Qt signal, so the viewer stays responsive; Cancel stops after the current batch of tiles (one
on the CPU; a plane predicted whole is one) and removes what was written. torch is loaded
when the widget opens (its views choices are utom predict's), not when napari starts or
reads a file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from napari.layers import Image, Layer
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from napari_utom import jobs
from napari_utom.layers import layer_fits, layer_source
from utom_core.errors import UtomError, first_line

MASK_COLOURS = {None: "transparent", 0: "transparent", 1: "magenta"}
"""Content pixels tinted magenta, as ``utom threshold --preview`` shows them."""


def _message(err: BaseException) -> str:
    """One line for the status label: utom's own message, or the exception's first line."""
    if isinstance(err, UtomError):
        return f"error: {err}"
    return f"error: {type(err).__name__}: {first_line(err)}"


def _domain_line(label: str, domain: Any, threshold: float) -> str:
    return (f"{label}: {domain.name} — {domain.channels} channel(s), {domain.axes}, "
            f"{domain.dtype.value}, {domain.background.value} background, "
            f"threshold {threshold:.8g}")


class UtomWidget(QWidget):
    """Run, saliency preview and prediction of the viewer's current image layer."""

    progressed = Signal(int, int)
    """(tiles done, total tiles), emitted from the worker thread."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.run_path: Path | None = None
        self.meta: Any = None
        self.worker: Any = None
        self.geometry: dict[str, Any] = {}
        """Scale, translate and units of the layer being predicted, for its result."""
        self.input: Image | None = None
        """The layer being predicted: current again once its result is added."""
        self.cancel = threading.Event()
        self._build()
        self.progressed.connect(self._show_progress)
        self.viewer.layers.selection.events.active.connect(self._show_layer)
        self._show_layer()
        self._idle()

    # layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.run_edit = QLineEdit(readOnly=True, placeholderText="no run chosen")
        choose = QPushButton("Choose run…")
        choose.clicked.connect(self._choose_run)
        row = QHBoxLayout()
        row.addWidget(self.run_edit)
        row.addWidget(choose)
        layout.addLayout(row)
        self.info = QLabel(wordWrap=True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.info)
        self.layer_label = QLabel()
        layout.addWidget(self.layer_label)
        layout.addWidget(self._preview_box())
        layout.addWidget(self._predict_box())
        self.status = QLabel(wordWrap=True)
        layout.addWidget(self.status)
        layout.addStretch()

    def _preview_box(self) -> QGroupBox:
        box = QGroupBox("Saliency preview (the content mask L_sc uses)")
        form = QFormLayout(box)
        self.domain_combo = QComboBox()
        self.domain_combo.currentIndexChanged.connect(self._reset_threshold)
        form.addRow("domain", self.domain_combo)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setTracking(False)  # re-draw when the handle is let go, not per step
        self.threshold.valueChanged.connect(self._refresh_preview)
        form.addRow("threshold (raw)", self.threshold)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview mask")
        self.preview_button.clicked.connect(self.preview)
        self.reset_button = QPushButton("Run's threshold")
        self.reset_button.clicked.connect(self._reset_threshold)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.reset_button)
        form.addRow(buttons)
        return box

    def _predict_box(self) -> QGroupBox:
        box = QGroupBox("Predict")
        form = QFormLayout(box)
        self.direction = QComboBox()
        self.direction.addItems(["a2b", "b2a"])
        self.direction.currentIndexChanged.connect(self._follow_direction)
        form.addRow("direction", self.direction)
        self.tile = QSpinBox(minimum=8, maximum=8192, value=512)
        form.addRow("tile (px)", self.tile)
        from utom_core.inference.views import DEFAULT_VIEWS, VIEW_COUNTS  # torch: not at start

        self.views = QComboBox()  # utom predict --views: the same choices and default
        self.views.addItems([str(n) for n in VIEW_COUNTS])
        self.views.setCurrentText(str(DEFAULT_VIEWS))
        form.addRow("views (flips/rotations)", self.views)
        self.model = QComboBox()  # the run's models; load_run selects the one utom run used
        form.addRow("model", self.model)
        self.fidelity = QCheckBox("fidelity map over the prediction (cyan: doubted)")
        form.addRow(self.fidelity)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        form.addRow("device", self.device)
        self.write_zarr = QCheckBox("also write OME-Zarr")
        self.zarr_edit = QLineEdit(placeholderText="prediction.ome.zarr")
        browse = QPushButton("…")
        browse.clicked.connect(self._choose_output)
        row = QHBoxLayout()
        row.addWidget(self.zarr_edit)
        row.addWidget(browse)
        form.addRow(self.write_zarr, row)
        buttons = QHBoxLayout()
        self.predict_button = QPushButton("Predict")
        self.predict_button.clicked.connect(self.predict)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.request_cancel)
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.progress = QProgressBar()
        form.addRow(self.progress)
        return box

    # run ---------------------------------------------------------------------------------
    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a utom run directory")
        if folder:
            self.load_run(Path(folder))

    def load_run(self, path: Path) -> None:
        """Read a run's task, domains, normalisations and thresholds (not its generator)."""
        from utom_core.trained import BEST_MODEL_FILE, load_run, run_pick

        try:
            cfg, meta, _ = load_run(Path(path))
        except UtomError as err:
            self.status.setText(_message(err))
            return
        self.run_path, self.meta = Path(path), meta
        self.run_edit.setText(str(path))
        self.info.setText("\n".join([
            f"task: {meta.task} (slicing {meta.slicing.value})",
            _domain_line("A", meta.domain_a, meta.threshold_a),
            _domain_line("B", meta.domain_b, meta.threshold_b)]))
        self.domain_combo.blockSignals(True)
        self.domain_combo.clear()
        self.domain_combo.addItems([f"A: {meta.domain_a.name}", f"B: {meta.domain_b.name}"])
        self.domain_combo.blockSignals(False)
        self.model.clear()
        self.model.addItems(["last", "best"] if (Path(path) / BEST_MODEL_FILE).is_file()
                            else ["last"])
        picked = run_pick(Path(path), cfg.run_checkpoint).name == BEST_MODEL_FILE
        self.model.setCurrentText("best" if picked else "last")  # as utom run predicted
        planes = meta.slicing.value == "xy"  # no fidelity maps of XZ/YZ planes (isotropic)
        self.fidelity.setEnabled(planes)
        self.fidelity.setChecked(self.fidelity.isChecked() and planes)
        self._follow_direction()
        self.status.setText("")
        self._idle()

    def _domain(self) -> tuple[Any, Any, float]:
        """The preview domain, its normalisation and the run's threshold for it."""
        meta = self.meta
        if self.domain_combo.currentIndex() == 1:
            return meta.domain_b, meta.normalisation_b, meta.threshold_b
        return meta.domain_a, meta.normalisation_a, meta.threshold_a

    def _follow_direction(self) -> None:
        """The preview looks at the images the chosen direction reads."""
        if self.meta is not None:
            self.domain_combo.setCurrentIndex(0 if self.direction.currentText() == "a2b" else 1)
            self._reset_threshold()

    def _reset_threshold(self) -> None:
        if self.meta is None:
            return
        _, norm, threshold = self._domain()
        self.threshold.blockSignals(True)
        self.threshold.setRange(min(*norm.low, threshold), max(*norm.high, threshold))
        self.threshold.setValue(threshold)
        self.threshold.blockSignals(False)
        self._refresh_preview()  # the domain may have changed, the value not

    # layers ------------------------------------------------------------------------------
    def current_layer(self) -> Image | None:
        layer = self.viewer.layers.selection.active
        return layer if isinstance(layer, Image) else None

    def _show_layer(self, *_: Any) -> None:
        layer = self.current_layer()
        self.layer_label.setText(f"image: {layer.name}" if layer else
                                 "image: select an image layer")

    def _ready(self) -> Image | None:
        """The current image layer, once a run is chosen; else None, and the status says
        which of the two is missing."""
        layer = self.current_layer()
        if self.meta is None:
            self.status.setText("error: choose a run first (Choose run…)")
        elif layer is None:
            active = self.viewer.layers.selection.active
            self.status.setText("error: select an image layer" + (
                f" ({active.name} is a {active.__class__.__name__} layer)" if active else ""))
        return layer if self.meta is not None else None

    def _mask_name(self, layer: Image) -> str:
        return f"{layer.name} content"

    # preview -----------------------------------------------------------------------------
    def preview(self) -> None:
        """Show the current layer's content mask at the slider's threshold as a Labels layer
        (replacing the data of an earlier preview of the same layer)."""
        layer = self._ready()
        if layer is None:
            return
        domain, norm, _ = self._domain()
        try:
            source = layer_source(layer, domain.channels)
            mask = jobs.content_mask(source, domain, norm, self.threshold.value())
        except UtomError as err:
            self.status.setText(_message(err))
            return
        name = self._mask_name(layer)
        if name in self.viewer.layers:
            self.viewer.layers[name].data = mask
        else:
            self.viewer.add_labels(mask, name=name, scale=layer.scale[-mask.ndim:],
                                   translate=layer.translate[-mask.ndim:], opacity=0.5,
                                   colormap=MASK_COLOURS)
            self.viewer.layers.selection.active = layer
        self.status.setText(f"{domain.name}: {mask.mean():.1%} of pixels are content at "
                            f"threshold {self.threshold.value():.8g}")

    def _refresh_preview(self, *_: Any) -> None:
        """Moving the slider updates a preview already shown."""
        layer = self.current_layer()
        if layer is not None and self._mask_name(layer) in self.viewer.layers:
            self.preview()

    # prediction --------------------------------------------------------------------------
    def _choose_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write the prediction to",
                                              "prediction.ome.zarr", "OME-Zarr (*.ome.zarr)")
        if path:
            self.zarr_edit.setText(path)
            self.write_zarr.setChecked(True)

    def job(self, layer: Image) -> jobs.Job:
        output = self.zarr_edit.text().strip() if self.write_zarr.isChecked() else ""
        if self.write_zarr.isChecked() and not output:
            raise UtomError("OME-Zarr output: choose a path (…)")
        from utom_core.trained import Checkpoint, chosen_model

        direction = self.direction.currentText()
        checkpoint: Checkpoint = "best" if self.model.currentText() == "best" else "last"
        run = Path(self.run_path or ".")  # set: a job is made once a run is chosen
        return jobs.Job(run=chosen_model(run, checkpoint),
                        direction=direction, tile=self.tile.value(),
                        views=int(self.views.currentText()),
                        device=self.device.currentText(), output=Path(output) if output else None,
                        name=f"{layer.name} ({self.meta.task} {direction})",
                        fidelity=self.fidelity.isChecked())

    def predict(self) -> None:
        """Predict the current layer in a worker thread; the result becomes a new layer."""
        layer = self._ready()
        if layer is None:
            return
        a2b = self.direction.currentText() == "a2b"
        source_domain, other = ((self.meta.domain_a, self.meta.domain_b) if a2b
                                else (self.meta.domain_b, self.meta.domain_a))
        try:
            job = self.job(layer)
            source = layer_source(layer, source_domain.channels)
        except UtomError as err:
            fits_other = (other.channels != source_domain.channels
                          and layer_fits(layer, other.channels))
            self.status.setText(_message(err) + (
                f" (direction {'b2a' if a2b else 'a2b'} reads {other.name}: "
                f"{other.channels} channel(s))" if fits_other else ""))
            return
        self.cancel = cancel = threading.Event()
        self.destroyed.connect(lambda *_: cancel.set())  # a closed widget stops its job
        self.geometry = {key: getattr(layer, key)[-len(source.info.shape[1:]):]
                         for key in ("scale", "translate", "units")}
        self.input = layer
        self.worker = create_worker(jobs.predict, source, job, self.progressed.emit,
                                    self.cancel, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._add_result)
        self.worker.errored.connect(lambda err: self.status.setText(_message(err)))
        self.worker.finished.connect(self._idle)
        self.progress.setRange(0, 0)  # busy until the first batch of tiles reports
        self.progress.setValue(0)
        self.status.setText(f"predicting {layer.name}…")
        self._busy()
        self.worker.start()

    def request_cancel(self) -> None:
        """Stop the running prediction after its current batch of tiles; nothing is added or
        written."""
        self.cancel.set()
        if self.worker is not None:
            self.status.setText("cancelling…")

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _add_result(self, layers: list | None) -> None:
        if layers is None:
            self.progress.setValue(0)
            self.status.setText("cancelled: no layer was added and nothing was written")
            return
        added = [self.viewer.add_layer(Layer.create(data, {**kwargs, **self.geometry}, kind))
                 for data, kwargs, kind in layers]  # placed where the input layer is
        if self.input in self.viewer.layers:  # a second Predict predicts the input again
            self.viewer.layers.selection.active = self.input
        self.status.setText(f"added {', '.join(layer.name for layer in added)}")

    def _busy(self) -> None:
        self.predict_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _idle(self) -> None:
        self.worker = None
        self.predict_button.setEnabled(self.meta is not None)
        self.preview_button.setEnabled(self.meta is not None)
        self.reset_button.setEnabled(self.meta is not None)
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:  # stopped before any batch: not busy any more
            self.progress.setRange(0, 1)
