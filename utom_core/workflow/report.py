"""report.md: what was run, on what data, with which settings, how well — for a biologist."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from utom_core.io.atomic import write_text

SETTINGS_SHOWN = ("method", "generator", "residual", "upsampling", "ngf", "n_blocks", "ndf",
                  "tile", "batch_size", "iterations", "lambda_cycle", "rho0", "images_per_epoch",
                  "saliency_variant", "ema_decay", "seed")

METRIC_HELP = {
    "psnr": "PSNR of the prediction against the reference (dB, higher is better)",
    "psnr_input": "PSNR of the untransformed input against the reference: the floor",
    "ssim": "SSIM against the reference (mean over channels)",
    "ssim_input": "SSIM of the untransformed input: the floor",
    "content_iou": "IoU of the input's and the prediction's content masks (saliency promise)",
    "content_dice": "Dice of the same masks",
    "content_iou_ref": "IoU of the prediction's and the reference's content masks",
    "content_dice_ref": "Dice of the prediction's and the reference's content masks",
    "color_emd": "colour histogram distance to the reference (8-bit levels, lower is better)",
    "color_emd_tissue": "the same, in tissue (content) pixels",
    "color_emd_background": "the same, in background pixels",
}


def metric_help(name: str) -> str:
    """What a metric means; per-channel SSIM keys (ssim_c0, …) are described by pattern."""
    if name.startswith("ssim_c"):
        return f"SSIM of channel {name.removeprefix('ssim_c')} against the reference"
    return METRIC_HELP.get(name, "")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict[str, float]) -> list[str]:
    lines = ["| metric | value | meaning |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(v)} | {metric_help(k)} |" for k, v in metrics.items()]
    return lines


def write_report(path: Path, record: dict[str, Any], out: Path) -> None:
    cfg = record["config"]
    lines = [
        f"# utom run: {record['task']} ({record['method']}, budget {record['budget']})",
        "",
        f"{record['iterations']} iterations in {record['train_seconds'] / 60:.1f} min of training, "
        f"{record['wall_seconds'] / 60:.1f} min in all; utom {record['versions']['utom']}, "
        f"torch {record['versions']['torch']}, {record['machine']['cpus']} CPUs.",
        "",
        "## Data",
        "",
        *[f"- {note}" for note in record["notes"]],
        "",
        f"Content thresholds (raw units): A {record['thresholds']['a']:.6g}, "
        f"B {record['thresholds']['b']:.6g}.",
        "",
        "## Settings",
        "",
        "| setting | value |", "|---|---|",
        *[f"| {k} | {_fmt(cfg[k])} |" for k in SETTINGS_SHOWN if k in cfg],
        "",
        "## Metrics (mean over test images)",
        "",
        *metrics_table(record["metrics"]),
        "",
        "## Test images",
        "",
    ]
    for row in record["images"]:
        name = Path(row["test"]).name.split(".")[0]
        panel = out / "previews" / f"{name}_panel.png"
        lines += [f"### {Path(row['test']).name}", "",
                  f"Prediction: `{os.path.relpath(row['prediction'], out)}`", ""]
        if panel.exists():
            picture = os.path.relpath(panel, out)
            lines += [f"![input, prediction, reference, overlay]({picture})", ""]
        line_profile = panel.with_name(f"{name}_profile.png")
        if line_profile.exists():
            lines += ["Intensity along a line through the reference's finest bright structure:",
                      "", f"![line profile]({os.path.relpath(line_profile, out)})", ""]
        lines += [*metrics_table(row["metrics"]), ""]
    lines += ["## Training", "", "Loss terms per iteration: `run/log.jsonl`; previews during "
              "training: `run/previews/`.", ""]
    write_text(path, "\n".join(lines))
