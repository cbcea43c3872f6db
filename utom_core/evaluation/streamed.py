"""Evaluating a prediction file: the task's evaluators, a preview panel and a line profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.errors import UtomError
from utom_core.evaluation.base import Sample
from utom_core.evaluation.figures.panels import magenta_green_overlay, save_panel
from utom_core.evaluation.figures.profiles import fine_structure_line, profile, save_profile_plot
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.runs import Predictor
from utom_core.task import Task


def evaluate_one(task: Task, predictor: Predictor, test: Path, prediction: Path,
                 reference: Path | None, previews: Path) -> dict[str, float]:
    """Metrics of one prediction, plus its preview panel and overlay PNGs."""
    registry = get_registry()
    source, target = predictor.source_norm, predictor.target_norm
    raw_input = read_image(test)
    sample = Sample(
        prediction=target.apply(read_image(prediction)),
        reference=target.apply(read_image(reference)) if reference else None,
        input=source.apply(raw_input),
        baseline=target.apply(raw_input) if source.channels == target.channels else None,
        input_saliency=predictor.source.saliency(source, predictor.source_threshold),
        output_saliency=predictor.target.saliency(target, predictor.target_threshold),
    )
    metrics: dict[str, float] = {}
    for name in task.evaluators:
        if name not in registry.evaluators:
            raise UtomError(f"task {task.name}: evaluator {name!r} is not registered")
        metrics.update(registry.evaluators[name].evaluate(sample))
    _previews(sample, previews / test.name.split(".")[0])
    return metrics


def _display_plane(image: np.ndarray) -> np.ndarray:
    """A 2D view of an image for previews: volumes show their middle XZ plane."""
    return image[:, :, image.shape[2] // 2, :] if image.ndim == 4 else image


def _previews(sample: Sample, stem: Path) -> None:
    views = [_display_plane(sample.input)] if sample.input is not None else []
    labels = ["input"] if views else []
    views.append(_display_plane(sample.prediction))
    labels.append("prediction")
    if sample.reference is not None:
        reference = _display_plane(sample.reference)
        views += [reference, magenta_green_overlay(_display_plane(sample.prediction), reference)]
        labels += ["reference", "overlay (prediction magenta, reference green)"]
        _line_profile(sample, reference, stem.with_name(stem.name + "_profile.png"))
    save_panel(stem.with_name(stem.name + "_panel.png"), views, labels)


def _line_profile(sample: Sample, reference: np.ndarray, path: Path) -> None:
    """Input (on the target's scale, where it has one), prediction and reference along a line
    through the reference's finest bright structure."""
    row, columns = fine_structure_line(reference)
    planes = {"input": sample.baseline, "prediction": sample.prediction}
    curves = {name: profile(_display_plane(image), row, columns)
              for name, image in planes.items() if image is not None}
    curves["reference"] = profile(reference, row, columns)
    save_profile_plot(path, curves, f"line profile: row {row}, columns "
                                    f"{columns.start} to {columns.stop - 1}")
