"""Validation while training: what the EMA generator makes of fixed crops of held-out images.

On a GAN the losses say little about when to stop; these scores do. Every ``val_every``
iterations the EMA generator A→B predicts one crop per validation image (the middle plane, a
central window of at most ``VAL_SIDE`` pixels a side, so every validation sees the same
pixels), scored by the evaluators of ``evaluation.metrics``: content IoU always, PSNR and SSIM
where a reference is given, and the reference-free gain measures (``evaluation.resolution``)
of a task that lists them or a ``val_metric`` that needs them. Rows go to ``val.jsonl``, the
curve to ``val_curve.png``, and the model ``model_choice`` keeps to ``model_best.pt``.
Nothing here draws a random number, so a run trains the same weights with validation or
without.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utom_core import trained
from utom_core.checkpoints import load_torch, save_torch
from utom_core.config import TrainConfig
from utom_core.data.images import DomainImages, Plane
from utom_core.errors import InputError, UtomError
from utom_core.evaluation.base import Evaluator, Sample
from utom_core.evaluation.figures.curves import curve_plot
from utom_core.evaluation.metrics import PSNR, SSIM, ContentOverlap
from utom_core.evaluation.resolution import Anisotropy, Resolution
from utom_core.evaluation.target_colour import TargetColour
from utom_core.inference.tiling import padded_length
from utom_core.io import FormatTable
from utom_core.networks.base import Generator
from utom_core.task import Task
from utom_core.training.model_choice import ModelChoice

VAL_SIDE = 512
"""Largest side of a validation crop."""
EVALUATORS = (PSNR(), SSIM(), ContentOverlap())
GAIN_EVALUATORS = {"resolution": Resolution(), "anisotropy": Anisotropy()}
"""The gain measures, validated where the task lists them or ``val_metric`` needs them."""
CURVE_METRICS = ("psnr", "ssim", "content_iou", *GAIN_EVALUATORS, TargetColour.name)
ValPair = tuple[Path, Path | None]
"""A validation image and its reference (ground truth in domain B), if any."""


@dataclass
class _Crop:
    raw: np.ndarray
    """(C, H, W) raw pixels of the validation image's crop."""
    reference: np.ndarray | None


def _middle_plane(images: DomainImages) -> Plane:
    """The middle plane along the first cut axis (the image itself when it is 2D)."""
    first = [plane for plane in images.planes if plane.axis == images.planes[0].axis]
    return first[len(first) // 2]


def _crop(images: DomainImages) -> np.ndarray:
    plane = _middle_plane(images)
    height, width = (min(VAL_SIDE, side) for side in plane.shape)
    y, x = (plane.shape[0] - height) // 2, (plane.shape[1] - width) // 2
    return images.read_window(plane, y, x, height, width)


def read_crop(task: Task, axes: tuple[str, ...], path: Path, reference: Path | None,
              formats: FormatTable | None = None) -> _Crop:
    """The fixed crop of one validation image, and of its reference at the same place."""
    images = DomainImages([path], task.domain_a, axes, formats)
    try:
        raw = _crop(images)
    finally:
        images.close()
    if reference is None:
        return _Crop(raw, None)
    references = DomainImages([reference], task.domain_b, axes, formats)
    try:
        if [p.shape for p in references.planes] != [p.shape for p in images.planes]:
            raise InputError(reference, f"does not match the shape of its validation image "
                                        f"{path}")
        return _Crop(raw, _crop(references))
    finally:
        references.close()


def whole_prediction(generator: Generator, unit: np.ndarray, multiple: int,
                     device: torch.device) -> np.ndarray:
    """G of a whole normalised (C, H, W) crop, mirrored out to the generator's size multiple
    and cut back: small crops need no tiles."""
    _, height, width = unit.shape
    pad = ((0, 0), (0, padded_length(height, multiple) - height),
           (0, padded_length(width, multiple) - width))
    x = torch.from_numpy(np.pad(unit, pad, mode="symmetric"))[None].to(device)
    with torch.no_grad():
        return generator(x)[0, :, :height, :width].float().cpu().numpy()


class Validator:
    """Scores the EMA generator on the validation crops; keeps the best model."""

    def __init__(self, task: Task, meta: trained.RunMeta, cfg: TrainConfig, pairs: list[ValPair],
                 axes: tuple[str, ...], multiple: int, device: torch.device,
                 formats: FormatTable | None = None, target: DomainImages | None = None) -> None:
        """``target``: the target domain's training images, whose colours an RGB target's
        predictions are measured against (``target_colour``: where the task judges colour in
        CIELAB, its evaluators list ``lab``, or ``val_metric`` asks for it)."""
        self.pairs = [(Path(p).absolute(), None if r is None else Path(r).absolute())
                      for p, r in pairs]
        self.crops = [read_crop(task, axes, p, r, formats) for p, r in self.pairs]
        every = all(r is not None for _, r in self.pairs)
        self.metric = cfg.val_metric if cfg.val_metric != "auto" else (
            "psnr" if every else "content_iou")
        if self.metric in ("psnr", "ssim") and not every:
            raise UtomError(f"val_metric {self.metric}: needs a --val-reference for every "
                            "--val image")
        self.norm_a, self.norm_b = meta.normalisation_a, meta.normalisation_b
        self.saliency_a = task.domain_a.saliency(meta.normalisation_a, meta.threshold_a)
        self.saliency_b = task.domain_b.saliency(meta.normalisation_b, meta.threshold_b)
        self.multiple, self.device = multiple, device
        self.every, self.last = cfg.val_every, cfg.iterations
        gains = [evaluator for name, evaluator in GAIN_EVALUATORS.items()
                 if name in (*task.evaluators, self.metric)]
        self.evaluators: tuple[Evaluator, ...] = (*EVALUATORS, *gains)
        rgb = task.domain_b.channels == 3
        if rgb and target is not None and (self.metric == TargetColour.name
                                           or "lab" in task.evaluators):
            self.evaluators += (TargetColour.of_images(target, self.norm_b, self.saliency_b),)
        elif self.metric == TargetColour.name:
            why = (f"{task.domain_b.name} has {task.domain_b.channels} channel(s)" if not rgb
                   else "no target domain images were given")
            raise UtomError(f"val_metric {self.metric}: needs an RGB target domain's images; "
                            f"{why}")
        self.choice = ModelChoice(self.metric)

    def due(self, iteration: int) -> bool:
        """Every ``val_every`` iterations and at the run's last; not where an interruption
        stops it, so that a resumed run's curve is an uninterrupted run's."""
        return iteration % self.every == 0 or iteration == self.last

    def metrics(self, generator: Generator) -> dict[str, float]:
        """Every metric, averaged over the validation images."""
        rows = [self._scored(generator, crop) for crop in self.crops]
        keys = dict.fromkeys(key for row in rows for key in row)
        return {key: float(np.mean([row[key] for row in rows if key in row])) for key in keys}

    def _scored(self, generator: Generator, crop: _Crop) -> dict[str, float]:
        unit = self.norm_a.apply(crop.raw)
        prediction = whole_prediction(generator, unit, self.multiple, self.device)
        same = crop.raw.shape[0] == prediction.shape[0]
        sample = Sample(
            prediction=prediction, input=unit, input_saliency=self.saliency_a,
            reference=None if crop.reference is None else self.norm_b.apply(crop.reference),
            baseline=self.norm_b.apply(crop.raw) if same else None,
            output_saliency=self.saliency_b, output_normalisation=self.norm_b)
        scores: dict[str, float] = {}
        for evaluator in self.evaluators:
            scores.update(evaluator.evaluate(sample))
        return scores

    def run(self, run_dir: Path, iteration: int, generator: Generator,
            model_state: Callable[[], dict[str, Any]]) -> dict[str, float]:
        """Validate, log the row, redraw the curve, and keep the model if it is the best."""
        metrics = self.metrics(generator)
        record = self.choice.offer(iteration, metrics)
        if record is not None:
            save_torch({**model_state(), "validation": record}, run_dir / trained.BEST_MODEL_FILE)
        with open(run_dir / trained.VAL_LOG_FILE, "a") as log:
            log.write(json.dumps({"iteration": iteration, **metrics}) + "\n")
        draw_curve(run_dir, self.metric)
        return metrics

    def resume(self, run_dir: Path) -> None:
        """Continue to compare with the best model the run has kept (a kill may have come
        after it was saved and before the checkpoint the run resumes from: it is still the
        best model that any validation of the run has seen)."""
        best = run_dir / trained.BEST_MODEL_FILE
        record = load_torch(best).get("validation") if best.is_file() else None
        self.choice.resume(record, rows(run_dir))

    def records(self) -> list[list[str | None]]:
        """The validation images as a checkpoint records them (a resumed run uses them)."""
        return [[str(p), None if r is None else str(r)] for p, r in self.pairs]


def rows(run_dir: Path) -> list[dict[str, float]]:
    """The logged validations (a row torn by a killed process is left out)."""
    log = run_dir / trained.VAL_LOG_FILE
    found = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def draw_curve(run_dir: Path, metric: str) -> None:
    """val_curve.png: each logged metric over the iterations, and the input's own score
    (doing nothing) where it has one."""
    logged = rows(run_dir)
    panels = {}
    for name in dict.fromkeys((metric, *CURVE_METRICS)):
        series = {"EMA generator": [(r["iteration"], r[name]) for r in logged if name in r],
                  "input": [(r["iteration"], r[f"{name}_input"]) for r in logged
                            if f"{name}_input" in r]}
        if series["EMA generator"]:
            panels[name] = {label: points for label, points in series.items() if points}
    curve_plot(run_dir / trained.VAL_CURVE_FILE, f"validation ({metric} picks model_best.pt)",
               panels)
