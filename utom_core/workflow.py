"""``utom run``: one task end to end — data, training, prediction, evaluation, report.

The same code path serves ``utom run`` and every row of ``utom bench``.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from utom_core import __version__, runs
from utom_core.config import Budget, Method, TrainConfig
from utom_core.errors import InputError, UtomError
from utom_core.evaluate import Sample
from utom_core.io import image_stem, list_images, open_image, read_image
from utom_core.io.atomic import temporary_sibling
from utom_core.plugins import get_registry
from utom_core.predict import TileOptions, predict_file
from utom_core.previews import magenta_green_overlay, save_panel
from utom_core.profiles import fine_structure_line, profile, save_profile_plot
from utom_core.report import write_report
from utom_core.runs import Predictor, load_predictor
from utom_core.supervised import train_supervised
from utom_core.task import Task, TaskData
from utom_core.trainer import train

PREDICTION_DIR = "predictions"
ZARR_FROM_BYTES = 2**30
"""Predictions at least this large are written as chunked OME-Zarr, smaller ones as TIFF."""
PREVIEW_DIR = "previews"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
RUN_SUBDIR = "run"
DATA_SUBDIR = "data"


@dataclass
class RunOutcome:
    """What a finished workflow produced."""

    out_dir: Path
    metrics: dict[str, Any]
    summary: str


def user_data(a: list[Path], b: list[Path], test: list[Path], reference: list[Path],
              rng: np.random.Generator) -> TaskData:
    """The user's files, made unpaired: of any aligned A/B pair, only one side is kept."""
    a_files, b_files = list_images(a), list_images(b)
    notes = ["user data"]
    if len(a_files) == len(b_files) and len(a_files) > 1 and all(
        _same_plane_shape(x, y) for x, y in zip(a_files, b_files, strict=True)
    ):
        keep_a = rng.permutation(len(a_files)) < (len(a_files) + 1) // 2
        a_files = [p for p, k in zip(a_files, keep_a, strict=True) if k]
        b_files = [p for p, k in zip(b_files, keep_a, strict=True) if not k]
        notes.append("--a and --b looked like aligned pairs (same count and shapes): one side "
                     f"of each pair was kept at random ({len(a_files)} A, {len(b_files)} B)")
    if set(a_files) & set(list_images(test) if test else []):
        raise UtomError("--test images must be held out of --a")
    test_files = list_images(test) if test else []
    references: list[Path | None] = list(list_images(reference)) if reference else []
    if references and len(references) != len(test_files):
        raise UtomError(f"--reference: {len(references)} file(s) for {len(test_files)} --test "
                        "image(s); give one reference per test image")
    return TaskData(a=a_files, b=b_files, test=test_files,
                    reference=references or [None] * len(test_files), notes=notes)


def _same_plane_shape(x: Path, y: Path) -> bool:
    sx, sy = open_image(x), open_image(y)
    try:
        return sx.info.shape[1:] == sy.info.shape[1:]
    finally:
        sx.close()
        sy.close()


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


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for row in rows for k in row})
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}


def prepare_out_dir(out: Path, overwrite: bool) -> Path | None:
    """Create ``out``. An old output that --overwrite replaces is moved aside and returned:
    it is deleted once the new run has trained, and put back if the new run fails before."""
    aside = None
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UtomError(f"{out}: already exists; use --overwrite to replace it")
        if not (out / RUN_SUBDIR).exists() and not (out / METRICS_FILE).exists():
            raise UtomError(f"{out}: --overwrite refused: not a utom run output")
        aside = temporary_sibling(out)
        out.rename(aside)
    out.mkdir(parents=True, exist_ok=True)
    return aside


def check_user_data(task: Task, data: TaskData, out: Path) -> None:
    """Refuse an --out that is or holds an input; open every test image and reference before
    anything is trained, so a bad one is refused in seconds, not after the training."""
    root = out.resolve()
    for path in [*data.a, *data.b, *data.test, *(r for r in data.reference if r)]:
        if root == path.resolve() or root in path.resolve().parents:
            raise UtomError(f"{out}: holds the input {path}; choose another --out")
    for test, reference in zip(data.test, data.reference, strict=True):
        source = open_image(test)
        shape = source.info.shape
        source.close()
        if shape[0] != task.domain_a.channels:
            raise InputError(test, f"has {shape[0]} channel(s), the {task.domain_a.name} "
                                   f"domain expects {task.domain_a.channels}")
        if reference is None:
            continue
        source = open_image(reference)
        found = source.info.shape
        source.close()
        if found != (task.domain_b.channels, *shape[1:]):
            raise InputError(reference, f"shape {found} does not fit test image {test.name} "
                                        f"(expected {(task.domain_b.channels, *shape[1:])})")


def prediction_name(test: Path, task: Task) -> str:
    """``STEM.tif``, or ``STEM.ome.zarr`` for predictions of a gigabyte or more (whole slides:
    chunked, and readable while Dask or napari stream them)."""
    source = open_image(test)
    try:
        pixels = int(np.prod(source.info.shape[1:], dtype=np.int64))
    finally:
        source.close()
    size = pixels * task.domain_b.channels * np.dtype(task.domain_b.dtype.value).itemsize
    suffix = ".ome.zarr" if size >= ZARR_FROM_BYTES else ".tif"
    return image_stem(test) + suffix


def run_workflow(task: Task, cfg: TrainConfig, budget: Budget, out: Path,
                 data: TaskData | None, *, overwrite: bool = False,
                 show_progress: bool = True) -> RunOutcome:
    """Prepare data (demo unless given), train, predict the tests, evaluate, report."""

    start = time.perf_counter()
    if data is not None:
        check_user_data(task, data, out)
        if cfg.method is Method.supervised:  # user_data keeps one side of any aligned pair
            raise UtomError("--method supervised trains on a task's demo pairs; it does not "
                            "take --a/--b")
    existed = out.exists()
    aside = prepare_out_dir(out, overwrite)
    try:
        if data is None:
            if task.demo_data is None:
                raise UtomError(f"task {task.name} has no demo data: give --a and --b")
            data = task.demo_data(out / DATA_SUBDIR, cfg.seed)
        if cfg.method is Method.supervised:
            result = train_supervised(task, cfg, out / RUN_SUBDIR, data.pairs,
                                      fit_on=(data.a, data.b), show_progress=show_progress)
        else:
            result = train(task, cfg, out / RUN_SUBDIR, data.a, data.b,
                           show_progress=show_progress)
    except BaseException:
        if not (out / RUN_SUBDIR / runs.CHECKPOINT_FILE).exists():  # nothing trained: undo
            shutil.rmtree(out)
            if aside is not None:
                aside.rename(out)
            elif existed:
                out.mkdir()
            aside = None
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside)
    if result.interrupted:
        raise UtomError(f"{out}: training interrupted at iteration {result.iteration}; "
                        f"continue with `utom train {task.name} --resume --out {out / RUN_SUBDIR}`")
    train_seconds = time.perf_counter() - start
    predictor = load_predictor(out / RUN_SUBDIR)
    rows = []
    for test, reference in zip(data.test, data.reference, strict=True):
        prediction = out / PREDICTION_DIR / prediction_name(test, task)
        predict_file(test, prediction, predictor, TileOptions(), show_progress=show_progress)
        metrics = evaluate_one(task, predictor, test, prediction, reference, out / PREVIEW_DIR)
        rows.append({"test": str(test), "reference": str(reference) if reference else None,
                     "prediction": str(prediction), "metrics": metrics})
    summary_metrics = _mean([row["metrics"] for row in rows])
    record = {
        "task": task.name, "plugin": task.plugin, "method": cfg.method.value,
        "budget": budget.value, "seed": cfg.seed, "iterations": result.iteration,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "train_seconds": round(train_seconds, 1),
        "metrics": summary_metrics, "images": rows, "notes": data.notes,
        "config": cfg.model_dump(mode="json"),
        "thresholds": {"a": predictor.source_threshold, "b": predictor.target_threshold},
        "versions": _versions(), "machine": _machine(),
    }
    runs.write_json(out / METRICS_FILE, record)
    write_report(out / REPORT_FILE, record, out)
    summary = _summary_line(task, cfg, summary_metrics, record["wall_seconds"], out)
    return RunOutcome(out, record, summary)


def _summary_line(task: Task, cfg: TrainConfig, metrics: dict[str, float], seconds: float,
                  out: Path) -> str:
    shown = [f"{k} {v:.3f}" for k, v in metrics.items()
             if k in ("psnr", "psnr_input", "ssim", "ssim_input", "content_iou")]
    return (f"{task.name} [{cfg.method.value}]: " + ", ".join(shown) +
            f" in {seconds / 60:.1f} min → {out / REPORT_FILE}")


def _versions() -> dict[str, str]:
    import torch

    return {"utom": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count()}

