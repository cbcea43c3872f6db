"""``utom run``: one task end to end — data, training, prediction, evaluation, report.

The same code path serves ``utom run`` and every row of ``utom bench``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import cast

import numpy as np

from utom_core import trained
from utom_core.checkpoints import load_torch
from utom_core.config import Budget, TrainConfig
from utom_core.errors import Interrupted, UtomError
from utom_core.evaluation.guide import run_warnings
from utom_core.evaluation.streamed import evaluate_prediction
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.inference.fidelity import LEVEL, fidelity_path, fraction_above, maps_made
from utom_core.inference.views import DEFAULT_VIEWS
from utom_core.plugins import Resolved
from utom_core.records import (
    KEEPING_RULES,
    BestModel,
    FidelityRecord,
    ImageRow,
    LastModel,
    Machine,
    PerDomain,
    RunRecord,
    Versions,
)
from utom_core.run_folders import (
    DATA_SUBDIR,
    EVALUATION_PREVIEW_DIR,
    METRICS_FILE,
    PREDICTION_DIR,
    REPORT_FILE,
    RUN_SUBDIR,
    record_outputs,
)
from utom_core.run_output import output_folder
from utom_core.task import Task, TaskData
from utom_core.trained import load_model
from utom_core.training import distributed, validation
from utom_core.training.supervised import train_supervised
from utom_core.training.train import train
from utom_core.training.trainer import TrainResult
from utom_core.workflow.holdout import HeldOut
from utom_core.workflow.report import write_report
from utom_core.workflow.userdata import check_user_data


@dataclass
class RunOutcome:
    """What a finished workflow produced."""

    out_dir: Path
    record: RunRecord | None
    """What metrics.json holds (None on the ranks other than 0 of a torchrun job)."""
    summary: str
    warning: str = ""
    """Said when the prediction scores below its input on a reference (``worse_warning``), or
    when a shared range looks doubtful (``fitting.range_note``); one per line."""


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for row in rows for k in row})
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}


def run_workflow(resolved: Resolved, cfg: TrainConfig, budget: Budget, out: Path,
                 data: TaskData | None, *, overwrite: bool = False,
                 show_progress: bool = True, held_out: HeldOut | None = None,
                 views: int = DEFAULT_VIEWS) -> RunOutcome:
    """Prepare data (demo unless given), train, predict the tests, evaluate, report.

    ``resolved``: the task and every object ``cfg`` names (the caller resolved them up front).
    ``held_out``: test regions to cut out of the user's --a image into OUT/data first.
    ``views``: flips and rotations each test image is predicted under (``inference.views``).
    Under torchrun rank 0 does all of it; the other ranks only train with it."""

    task = resolved.task
    distributed.join(cfg.device)
    paired = resolved.method.paired
    cfg = _picking(cfg, paired)
    if distributed.launched() and paired:
        raise UtomError("--method supervised trains in one process: start it without torchrun")
    if paired and cfg.minutes is not None:
        raise UtomError(f"--minutes/--hours: --method {cfg.method} trains a fixed count; give "
                        "--iterations instead")
    if not distributed.ranks().main:
        return _other_rank(resolved, cfg, out)
    start = time.perf_counter()
    if data is not None:
        check_user_data(task, data, out, held_out.inputs() if held_out else [],
                        resolved.formats)
        if paired:  # user_data keeps one side of any aligned pair
            raise UtomError(f"--method {cfg.method} trains on a task's demo pairs; it does not "
                            "take --a/--b")
    finished = False  # training has ended: what is left to do with its run is predicting

    def next_step(run: Path) -> str:
        if finished:
            return f"predict with it: `utom predict {quote(str(run))} IMAGE --out FOLDER`"
        return f"continue it with `{_resume_command(task, run)}`"

    with output_folder(out, overwrite, next_step):
        if data is None:
            if task.demo_data is None:
                raise UtomError(f"task {task.name} has no demo data: give --a and --b")
            data = task.demo_data(out / DATA_SUBDIR, cfg.seed)
            record_outputs(out)
        elif held_out is not None:
            data = held_out.cut(data, out / DATA_SUBDIR)
            record_outputs(out)
        distributed.share(data)
        if paired:
            result = train_supervised(task, cfg, out / RUN_SUBDIR, data.pairs,
                                      build_generator=resolved.build_generator,
                                      formats=resolved.formats, fit_on=(data.a, data.b),
                                      show_progress=show_progress)
        else:
            result = _train(resolved, cfg, out, data, show_progress)
        if result.interrupted:
            raise Interrupted(f"{out}: training interrupted at iteration {result.iteration}; "
                              f"continue with `{_resume_command(task, out / RUN_SUBDIR)}`")
        train_seconds, finished = time.perf_counter() - start, True
        # the task's pick; the last where no validation ran (a test image too small)
        model = trained.run_pick(out / RUN_SUBDIR, cfg.run_checkpoint)
        loaded = load_model(model, build_generator=resolved.build_generator,
                            reverse=True)  # the fidelity map's cycle residual
        fidelity = maps_made(loaded.slicing)
        predictor = Predictor(loaded, PredictOptions(views=views, fidelity=fidelity),
                              formats=resolved.formats)  # otherwise utom predict's
        rows = []
        for test, reference in zip(data.test, data.reference, strict=True):
            record_outputs(out)  # what utom wrote is known as utom's (rundirs)
            prediction = predict_file(predictor, test, out / PREDICTION_DIR,
                                      show_progress=show_progress)
            record_outputs(out)
            evaluation = evaluate_prediction(resolved.evaluators, loaded, test, prediction,
                                             reference, out / EVALUATION_PREVIEW_DIR,
                                             formats=resolved.formats)
            rows.append(ImageRow(test=str(test), reference=str(reference) if reference else None,
                                 prediction=str(prediction), metrics=evaluation.metrics,
                                 notes=evaluation.notes,
                                 fidelity=_fidelity(prediction, resolved) if fidelity else None))
        record_outputs(out)
        meta = result.meta  # None for a paired method: it fits no thresholds
        record = RunRecord(
            task=task.name, plugin=task.plugin, method=cfg.method, budget=budget.value,
            seed=cfg.seed, iterations=result.iteration,
            wall_seconds=round(time.perf_counter() - start, 1),
            train_seconds=round(train_seconds, 1), metrics=_mean([row.metrics for row in rows]),
            images=rows, notes=data.notes,
            config=resolved.method.with_settings(loaded.config),  # as trained: --minutes' plan
            thresholds=PerDomain[float](a=loaded.source_threshold, b=loaded.target_threshold),
            content_fractions=PerDomain[float | None](
                a=meta.content_fraction_a if meta else None,
                b=meta.content_fraction_b if meta else None),
            threshold_sources=PerDomain[str | None](
                a=meta.threshold_source_a if meta else None,
                b=meta.threshold_source_b if meta else None),
            range_note=meta.range_note if meta else "",
            predicted_with=_predicted_with(model, result.iteration, loaded.output_gains),
            held_out=held_out.record() if held_out else None, views=views,
            versions=Versions.current(), machine=Machine.current())
        record.write(out / METRICS_FILE)
        write_report(out / REPORT_FILE, record, out, resolved.method)
        record_outputs(out)  # the report's figures
        summary = _summary_line(task, cfg, record.metrics, record.wall_seconds, out,
                                (record.thresholds.a, record.thresholds.b))
        warnings = run_warnings(record.metrics)
        warnings += [f"warning: {record.range_note}"] if record.range_note else []
        return RunOutcome(out, record, summary, "\n".join(filter(None, warnings)))


def _fidelity(prediction: Path, resolved: Resolved) -> FidelityRecord:
    """The record of the fidelity map written beside ``prediction``."""
    path = fidelity_path(prediction, resolved.formats)
    return FidelityRecord(path=str(path), level=LEVEL,
                          above=fraction_above(path, LEVEL, resolved.formats))


def _resume_command(task: Task, run: Path) -> str:
    return f"utom train {quote(task.name)} --resume --out {quote(str(run))}"


def _picking(cfg: TrainConfig, paired: bool) -> TrainConfig:
    """The run's settings with what ``run_checkpoint`` implies: ``best`` validates the tests
    without their references (which would flatter the scores reported): by content IoU, or by
    a tolerant rule among models that keep the content (``val_metric`` content_kept,
    resolution, anisotropy or target_colour, a task's choice); a paired method, which does
    not validate, predicts with its last model."""
    if cfg.run_checkpoint == "last":
        return cfg
    if paired:
        return cfg.model_copy(update={"run_checkpoint": "last"})
    if cfg.val_metric in ("psnr", "ssim"):
        raise UtomError(f"run_checkpoint=best picks among validations of the test images: "
                        f"val_metric={cfg.val_metric} would pick by their references and "
                        "flatter the scores reported; use val_metric=content_iou")
    if cfg.val_metric in KEEPING_RULES:
        return cfg
    return cfg.model_copy(update={"val_metric": "content_iou"})


def _predicted_with(model: Path, last: int, gains: tuple[float, ...] | None
                    ) -> LastModel | BestModel:
    """Which model predicted the tests: the last, or the best validation's (its record)."""
    balance = None if gains is None else list(gains)
    if model.name != trained.BEST_MODEL_FILE:
        return LastModel(model="last", iteration=last, white_balance=balance)
    record = load_torch(model)["validation"]
    if record.get("tolerance") is not None:  # a gain pick: against the best IoU of the whole run
        ious = [row["content_iou"] for row in validation.rows(model.parent)
                if "content_iou" in row]
        record["best_content_iou"] = max([record["best_content_iou"], *ious])
    return BestModel(model="best", white_balance=balance, **record)


def _validation(data: TaskData) -> list[tuple[Path, Path | None]]:
    """The test images, validated while the run trains (the curve and model_best.pt; the
    reported metrics stay those of the last model: picking by test images would flatter it)."""
    return list(zip(data.test, data.reference, strict=True))


def _train(resolved: Resolved, cfg: TrainConfig, out: Path, data: TaskData,
           show_progress: bool) -> TrainResult:
    """The unpaired run in OUT/run, validating on the test images (every rank alike)."""
    return train(resolved.task, cfg, out / RUN_SUBDIR, data.a, data.b, method=resolved.method,
                 build_generator=resolved.build_generator, formats=resolved.formats,
                 show_progress=show_progress, val=_validation(data))


def _other_rank(resolved: Resolved, cfg: TrainConfig, out: Path) -> RunOutcome:
    """A rank other than 0 under torchrun: it trains on the data rank 0 prepared, and leaves
    prediction, evaluation and the report to rank 0."""
    with distributed.peer_failures(lambda: "rank 0 stopped before training"):
        data = cast(TaskData, distributed.share())  # rank 0 shares its TaskData
    result = _train(resolved, cfg, out, data, show_progress=False)
    if result.interrupted:
        raise Interrupted("training interrupted")  # said by rank 0
    return RunOutcome(out, None, "")


def _summary_line(task: Task, cfg: TrainConfig, metrics: dict[str, float], seconds: float,
                  out: Path, thresholds_ab: tuple[float, float]) -> str:
    shown = [f"{k} {v:.3f}" for k, v in metrics.items()
             if k in ("psnr", "psnr_input", "ssim", "ssim_input", "content_iou")]
    thresholds = f"; thresholds A {thresholds_ab[0]:.6g}, B {thresholds_ab[1]:.6g} (raw)"
    return (f"{task.name} [{cfg.method}]: " + ", ".join(shown) + thresholds +
            f" in {seconds / 60:.1f} min → {out / REPORT_FILE}")

