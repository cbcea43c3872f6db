"""Evaluating a prediction file against its input and reference, in bounded memory.

Predictions of up to ``WHOLE_VALUES`` values are read whole and every evaluator sees the whole
image. Larger ones (whole slides, volumes) stream: each XY plane is read in row strips with a
halo of real rows (SSIM windows, saliency blurs), the evaluators' accumulators gather their
statistics strip by strip, and the previews show a central full-resolution crop — so
evaluating a 50k × 100k slide holds one strip, never the slide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utom_core.evaluation.base import Evaluator, Region, Sample
from utom_core.evaluation.figures.image_previews import save_previews
from utom_core.evaluation.metrics import SSIM_PAD
from utom_core.evaluation.periodic import CROP, PeriodicArtefact
from utom_core.io import FormatTable, image_stem, open_image, read_image
from utom_core.io.base import ImageSource
from utom_core.trained import TrainedModel

WHOLE_VALUES = 2**24
"""Predictions with at most this many values (channels × pixels) are evaluated whole."""
STRIP_VALUES = 2**22
"""Values per array in one streamed strip (its rows follow from the image width)."""
PREVIEW_SIDE = 2048
"""Largest side of the preview crop of a streamed prediction."""
PERIODIC = PeriodicArtefact()
"""Scored on every prediction, besides the task's evaluators: a grid printed by the generator
is a fault of any output."""


@dataclass
class Evaluation:
    """The metrics of one prediction and what a reader of the report should know about them."""

    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _sample(predictor: TrainedModel, raw_input: np.ndarray, raw_prediction: np.ndarray,
            raw_reference: np.ndarray | None) -> Sample:
    """Raw pixels of (a region of) the input, prediction and reference on the [-1, 1] scale."""
    source, target = predictor.source_norm, predictor.target_norm
    return Sample(
        prediction=target.apply(raw_prediction),
        reference=target.apply(raw_reference) if raw_reference is not None else None,
        input=source.apply(raw_input),
        baseline=target.apply(raw_input) if source.channels == target.channels else None,
        input_saliency=predictor.source.saliency(source, predictor.source_threshold),
        output_saliency=predictor.target.saliency(target, predictor.target_threshold),
        output_normalisation=target,
    )


def evaluate_prediction(evaluators: dict[str, Evaluator], predictor: TrainedModel, test: Path,
                        prediction: Path, reference: Path | None, previews: Path, *,
                        formats: FormatTable | None = None) -> Evaluation:
    """Metrics of one prediction by ``evaluators`` (the task's, resolved by the caller), plus
    its preview panel and line profile PNGs; ``formats`` opens the files (None: built-ins)."""
    stem = previews / image_stem(test, formats=formats)
    sources = [open_image(p, formats=formats) for p in (test, prediction, reference)
               if p is not None]
    try:
        shape = sources[1].info.shape
        if math.prod(shape) <= WHOLE_VALUES:
            return _whole(predictor, evaluators, (test, prediction, reference), stem, formats)
        return _streamed(predictor, evaluators, sources, stem)
    finally:
        for source in sources:
            source.close()


def _whole(predictor: TrainedModel, evaluators: dict[str, Evaluator],
           paths: tuple[Path, Path, Path | None], stem: Path,
           formats: FormatTable | None) -> Evaluation:
    test, prediction, reference = paths
    sample = _sample(predictor, read_image(test, formats=formats),
                     read_image(prediction, formats=formats),
                     read_image(reference, formats=formats) if reference else None)
    metrics: dict[str, float] = {}
    for evaluator in (*evaluators.values(), PERIODIC):
        metrics.update(evaluator.evaluate(sample))
    save_previews(sample, stem)
    return Evaluation(metrics)


def _halo(predictor: TrainedModel) -> int:
    """Rows of context a strip needs: the SSIM window's, or the saliency blur's if wider."""
    sigmas = (predictor.source.saliency_smooth, predictor.target.saliency_smooth)
    return max([SSIM_PAD, *(math.ceil(3 * s) + 1 for s in sigmas if s > 0)])


def _read(source: ImageSource, z: int | None, rows: slice, cols: slice = slice(None)
          ) -> np.ndarray:
    """Rows of XY plane ``z`` (None: a 2D image) as (C, rows, columns)."""
    if z is None:
        return source.read((rows, cols))
    return source.read((slice(z, z + 1), rows, cols))[:, 0]


def _streamed(predictor: TrainedModel, evaluators: dict[str, Evaluator],
              sources: list[ImageSource], stem: Path) -> Evaluation:
    accumulators = {name: ev.accumulator() for name, ev in evaluators.items()}
    notes = [f"evaluator {name} needs whole images and was skipped for this "
             f"{math.prod(sources[1].info.shape) / 1e6:.0f}-megavalue prediction"
             for name, acc in accumulators.items() if acc is None]
    streaming = [acc for acc in accumulators.values() if acc is not None]
    shape = sources[1].info.shape
    height, width = shape[-2:]
    rows = max(16, STRIP_VALUES // (width * max(s.info.channels for s in sources)))
    halo = _halo(predictor)
    for z in (range(shape[1]) if len(shape) == 4 else [None]):
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            lo, hi = max(0, start - halo), min(height, stop + halo)
            arrays = [_read(source, z, slice(lo, hi)) for source in sources]
            sample = _sample(predictor, *arrays, *([None] * (3 - len(arrays))))
            region = Region(sample, slice(start - lo, stop - lo), 0 if z is None else z)
            for acc in streaming:
                acc.add(region)
    metrics: dict[str, float] = {}
    for acc in streaming:
        metrics.update(acc.result())
    metrics.update(PERIODIC.evaluate(_periodic_crop(predictor, sources[1])))
    save_previews(_preview_crop(predictor, sources), stem)
    notes.append(_crop_note(shape))
    return Evaluation(metrics, notes)


def _crop_window(length: int, side: int | None = None) -> slice:
    """The central ``side`` (None: ``PREVIEW_SIDE``) of ``length``."""
    side = PREVIEW_SIDE if side is None else side
    start = max(0, (length - side) // 2)
    return slice(start, min(length, start + side))


def _periodic_crop(predictor: TrainedModel, prediction: ImageSource) -> Sample:
    """The prediction's central ``CROP``² of its central XY plane: all the periodic artefact
    measures, so a streamed prediction scores what it would whole."""
    shape = prediction.info.shape
    z = shape[1] // 2 if len(shape) == 4 else None
    crop = _read(prediction, z, _crop_window(shape[-2], CROP), _crop_window(shape[-1], CROP))
    return Sample(prediction=predictor.target_norm.apply(crop))


def _preview_crop(predictor: TrainedModel, sources: list[ImageSource]) -> Sample:
    """A central full-resolution crop: of the plane, or of a volume's middle XZ plane (kept
    as a (C, Z, 1, X) volume, whose display plane it is)."""
    shape = sources[1].info.shape
    cols = _crop_window(shape[-1])
    if len(shape) == 4:
        middle = slice(shape[2] // 2, shape[2] // 2 + 1)
        arrays = [s.read((_crop_window(shape[1]), middle, cols)) for s in sources]
    else:
        arrays = [s.read((_crop_window(shape[1]), cols)) for s in sources]
    return _sample(predictor, *arrays, *([None] * (3 - len(arrays))))


def _crop_note(shape: tuple[int, ...]) -> str:
    rows, cols = _crop_window(shape[-3] if len(shape) == 4 else shape[-2]), _crop_window(shape[-1])
    plane = "the middle XZ plane, z" if len(shape) == 4 else "rows"
    return (f"metrics streamed over the whole prediction; previews show {plane} "
            f"{rows.start}–{rows.stop - 1}, columns {cols.start}–{cols.stop - 1}")
