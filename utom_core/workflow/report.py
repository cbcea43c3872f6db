"""report.md: what was run, on what data, with which settings, how well — for a biologist.

Every metric is shown beside its floor (the untransformed input) where there is one and with
what a good value looks like (``evaluation.guide``), most important first; the loss curves
are drawn from ``run/log.jsonl``, and the validation curve is shown when the run has one.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.evaluation.figures.fidelity import save_fidelity_panel
from utom_core.evaluation.figures.losses import save_loss_curves
from utom_core.evaluation.guide import (
    CHANNEL,
    floor_of,
    guide,
    ordered,
    periodic_note,
    run_warnings,
    verdict,
)
from utom_core.evaluation.resolution import LATERAL_TOLERANCE
from utom_core.inference.views import DEFAULT_VIEWS
from utom_core.io import image_stem
from utom_core.io.atomic import write_text
from utom_core.methods import Method
from utom_core.records import KEEPING_RULES, BestModel, ImageRow, LastModel, RunRecord
from utom_core.workflow.threshold_note import threshold_line

SETTINGS_SHOWN = ("method", "generator", "residual", "upsampling", "lattice_notch", "ngf",
                  "n_blocks", "ndf", "tile", "batch_size", "iterations", "lambda_cycle", "identity",
                  "lambda_identity", "lambda_shift", "lambda_background", "white_balance", "rho0",
                  "images_per_epoch", "saliency_variant", "ema_decay", "seed")
"""The core settings that shape the result; those the run's method does not use are left out."""
LOSS_CURVES = "previews/training_losses.png"
"""The report's loss-curve figure, in the run output."""
READING_LOSSES = (
    "What good looks like: the method's own terms (cycle, saliency, NCE) fall steeply over "
    "the first iterations and then flatten; the discriminators' losses settle between about "
    "0.1 and 0.3 "
    "(0.25 is the balance of their least-squares loss). One that sinks towards 0 has won: its "
    "generator stopped learning, and more iterations will not help. Noisy but level curves "
    "are normal for a GAN. The losses do not say when the images are best: the validation "
    "curve does.")

FIDELITY_READING = (
    "Reading it: 0 where the views of the image agree and the content mask of the input "
    "matches the prediction's, up to 1 where the views disagree or content appeared or "
    "vanished (docs/predict.md#fidelity). A doubtful area is worth checking by eye; a "
    "trusted one can still be wrong in the same way for every view.")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict[str, float]) -> list[str]:
    """Metrics most important first, each beside its floor and read against it (tasks without
    floors, which change the channel count, get no floor columns)."""
    floors = any(floor_of(name) in metrics for name in metrics)
    lines = (["| metric | value | floor (the input) | against the floor |", "|---|---|---|---|"]
             if floors else ["| metric | value |", "|---|---|"])
    for name in ordered(metrics):
        floor = metrics.get(floor_of(name))
        judged = (f" {'–' if floor is None else _fmt(floor)} | "
                  f"{verdict(name, metrics[name], floor) or '–'} |") if floors else ""
        lines.append(f"| {name} | {_fmt(metrics[name])} |{judged}")
    return lines


def reading(metrics: dict[str, float]) -> list[str]:
    """What each metric shown measures and what a good value looks like, once per report."""
    lines, channels = [], [name for name in ordered(metrics) if CHANNEL.match(name)]
    for name in ordered(metrics):
        about = guide(name)
        if about.meaning and name not in channels:
            lines.append(f"- `{name}`: {about.meaning}. Good: {about.good}.")
    if channels:
        lines.append(f"- `{channels[0]}` … `{channels[-1]}`: the same per channel.")
    return lines


VALIDATION_VS_REPORT = (
    "Validation scores (the curve, `run/val.jsonl`) and these differ for the same model: "
    "validation scores a central crop of at most 512 × 512 pixels of each test image's middle "
    "plane, predicted in one pass under one view; this report scores every pixel of every "
    "plane of the prediction `utom predict` wrote (its test-time views averaged, rounded to "
    "the output's pixel type).")


def _balance(used: LastModel | BestModel) -> str:
    """The white balance the model's outputs took, where it has one."""
    if used.white_balance is None:
        return ""
    return (f" Its outputs take the white balance {trained.gains_text(used.white_balance)} per "
            "channel: the gains that bring the background of its predictions of the test "
            "images to the B images' glass (`white_balance`, docs/training.md).")


def _model_used(used: LastModel | BestModel) -> list[str]:
    """Which model the scores are of, and why that one (always said: the numbers are its)."""
    if not isinstance(used, BestModel):
        return [f"Predicted with the last model (`model.pt`, iteration {used.iteration}): "
                "`run_checkpoint = \"last\"`, or a method that does not validate. "
                f"{VALIDATION_VS_REPORT}{_balance(used)}", ""]
    why = f"the best {used.metric} ({used.score:.3f}) of the validations on the test images"
    if used.tolerance is not None:
        measure = "" if used.metric == "content_kept" else f" ({used.metric} {used.score:.3g})"
        why = (f"{KEEPING_RULES.get(used.metric, used.metric)}{measure} "
               "among the validations on the test images whose content IoU was within "
               f"{used.tolerance:g} of the best ({used.best_content_iou:.3f}; this one's "
               f"{used.content_iou:.3f})")
    return [f"Predicted with `model_best.pt`: iteration {used.iteration}, {why}, picked "
            "without their references "
            "(`run_checkpoint = \"best\"`; the curve is in `run/val_curve.png`). "
            f"{_lateral_lost(used)}{VALIDATION_VS_REPORT}{_balance(used)}", ""]


def _lateral_lost(used: BestModel) -> str:
    """The caveat of an anisotropy pick that lost lateral resolution."""
    if used.lateral_kept is not False:
        return ""
    return (f"Its lateral resolution was over {LATERAL_TOLERANCE:.0%} coarser than its "
            "input's (the rule keeps such a model only while no eligible one keeps it): its "
            "anisotropy may owe to lateral blur. ")


def _predict_more(record: RunRecord, out: Path) -> list[str]:
    """The ``utom predict`` command that predicts as this run did, with the model it kept
    (``--checkpoint``'s default): the model lives in ``run/`` of the output folder, which a
    first-day user cannot guess. Paths are absolute: the report is read from anywhere."""
    options = f" --views {record.views}" if record.views and record.views != DEFAULT_VIEWS else ""
    return ["## Predict more images", "",
            "With the model these scores are of, under the same views:", "", "```bash",
            f"utom predict {shlex.quote(str(out.absolute() / trained.RUN_SUBDIR))} IMAGE... "
            f"--out FOLDER{options}", "```", "",
            "To look at this folder in napari — the predictions, each fidelity map over its "
            "prediction, the training previews — with the napari plugin "
            "(docs/napari.md):", "", "```bash",
            f"napari --plugin napari-utom {shlex.quote(str(out.absolute()))}", "```", ""]


def upsampling_note(upsampling: str | None, notch: float = 0.0) -> str:
    """How the generators upsample, and what the other choices print over an output."""
    if notch > 0:
        return (f"Upsampling: {upsampling}, with the 4-px stride lattice notched out of the "
                f"output (σ {notch:g} px): sharp, and no 2- or 4-px grid (docs/training.md).")
    if upsampling == "smooth":
        return ("Upsampling: smooth resize-then-convolve (the default): blurred bilinear "
                "resizes, which leave no 2- or 4-px grid (docs/training.md; `--set "
                "upsampling=resize` or `transpose` for the earlier and the paper's layouts).")
    return (f"Upsampling: {upsampling}, as set; it can print a 2- or 4-px grid over the "
            "output (see the periodic artefact above; the default, smooth, does not).")


def _settings(cfg: TrainConfig, method: Method) -> list[str]:
    """The settings that shape the result and that ``method`` uses (a weight it ignores is no
    number to reconcile), and the method's own (``method_settings``)."""
    unused = method.unused_settings(cfg)
    shown = {k: getattr(cfg, k) for k in SETTINGS_SHOWN if k not in unused}
    shown |= {f"method_settings.{k}": v for k, v in cfg.method_settings.items()}
    notes = method.setting_notes
    rows = [f"| {k} | {_fmt(v)}{f' ({notes[k]})' if k in notes else ''} |"
            for k, v in shown.items()]
    left_out = ([f"Settings {method.name} does not use are not shown.", ""]
                if unused & set(SETTINGS_SHOWN) else [])
    return ["| setting | value |", "|---|---|", *rows, "", *left_out,
            upsampling_note(cfg.upsampling, cfg.lattice_notch)]


def _training(out: Path) -> list[str]:
    lines = ["## Training", "", "Loss terms per iteration: `run/log.jsonl`; previews during "
             "training: `run/previews/`.", ""]
    if save_loss_curves(out / "run" / trained.LOG_FILE, out / LOSS_CURVES):
        lines += [f"![loss curves]({LOSS_CURVES})", "", READING_LOSSES, ""]
    validation = out / "run" / trained.VAL_CURVE_FILE
    if validation.exists():
        lines += ["Validation scores of the EMA generator during training (`run/"
                  f"{trained.VAL_LOG_FILE}`):", "",
                  f"![validation curve]({os.path.relpath(validation, out)})", ""]
    return lines


def _images(record: RunRecord, out: Path) -> list[str]:
    lines = ["## Test images", ""]
    for row in record.images:
        name = image_stem(Path(row.test))
        panel = out / "previews" / f"{name}_panel.png"
        lines += [f"### {Path(row.test).name}", "",
                  f"Prediction: `{os.path.relpath(row.prediction, out)}`", ""]
        if panel.exists():
            picture = os.path.relpath(panel, out)
            drawn = ("input, prediction, reference, overlay" if row.reference is not None
                     else "input, prediction (no reference: no overlay)")
            lines += [f"![{drawn}]({picture})", ""]
        line_profile = panel.with_name(f"{name}_profile.png")
        if line_profile.exists():
            lines += ["Intensity along the yellow line on the panel, through the reference's "
                      "finest bright structure: a restoration should follow the reference's "
                      "peaks, not the input's.", "",
                      f"![line profile]({os.path.relpath(line_profile, out)})", ""]
        lines += _fidelity(row, out / "previews" / f"{name}_fidelity.png", out)
        if row.notes:
            lines += [*(f"- {note}" for note in row.notes), ""]
        lines += [*metrics_table(row.metrics), ""]
    return lines


def _fidelity(row: ImageRow, figure: Path, out: Path) -> list[str]:
    """The fidelity map's figure and what share of the image it doubts, where it was written."""
    if row.fidelity is None:
        return []
    said = (f"Fidelity map: `{os.path.relpath(row.fidelity.path, out)}`; "
            f"{row.fidelity.above:.1%} of the pixels are above {row.fidelity.level:g} "
            f"(doubtful). {FIDELITY_READING}")
    if not save_fidelity_panel(Path(row.prediction), Path(row.fidelity.path), figure):
        return [said, ""]
    return [f"![prediction, fidelity map, overlay]({os.path.relpath(figure, out)})", "", said, ""]


def _warning(metrics: dict[str, float]) -> list[str]:
    """The run's warnings (failed content, worse than the input), in bold above everything
    else, where they apply."""
    return [line for warning in run_warnings(metrics)
            for line in (f"**{warning[0].upper()}{warning[1:]}.**", "")]


def _periodic(metrics: dict[str, float]) -> list[str]:
    """The line on a periodic grid in the output, under the metrics, where there is one."""
    note = periodic_note(metrics)
    return [note, ""] if note else []


def _planned(cfg: TrainConfig) -> str:
    """Where a time budget (--minutes) planned the iterations, the time asked."""
    return "" if cfg.minutes is None else f" (planned to fill {cfg.minutes:g} min)"


def write_report(path: Path, record: RunRecord, out: Path, method: Method) -> None:
    """report.md of the ``utom run`` output ``out``, from its record; ``method``: the one
    that trained it (which settings it uses)."""
    lines = [
        f"# utom run: {record.task} ({record.method}, budget {record.budget})",
        "",
        f"{record.iterations} iterations{_planned(record.config)} in "
        f"{record.train_seconds / 60:.1f} min of training, "
        f"{record.wall_seconds / 60:.1f} min in all; utom {record.versions.utom}, "
        f"torch {record.versions.torch}, {record.machine.cpus} CPUs"
        + (f", {record.machine.threads} threads." if record.machine.threads else "."),
        "",
        *_warning(record.metrics),
        "## Data",
        "",
        *[f"- {note}" for note in record.notes],
        "",
        threshold_line(record, out),
        "",
        "## Settings",
        "",
        *_settings(record.config, method),
        "",
        "## Metrics (mean over test images)",
        "",
        *_model_used(record.predicted_with),
        *([f"Test images predicted under {record.views} view(s) (`--views`: flips and "
           "rotations undone and averaged).", ""] if record.views else []),
        "Most important first. The floor is the untransformed input scored against the same "
        "reference: a restoration must beat it. Tasks that change the channel count have no "
        "floor; their typical values are stated instead.",
        "",
        *metrics_table(record.metrics),
        "",
        *_periodic(record.metrics),
        "Reading them:",
        "",
        *reading(record.metrics),
        "",
        *_images(record, out),
        *_predict_more(record, out),
        *_training(out),
    ]
    write_text(path, "\n".join(lines))
