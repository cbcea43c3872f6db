"""``utom bench``: every registered task × method × seed through the ``utom run`` code path.

Results accumulate in OUT/bench.json as runs finish, so an interrupted bench resumes where it
stopped; a failed run is recorded with its error and the others go on; Ctrl-C or SIGTERM stops
the bench (no row for the run it interrupted: it is run again next time).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utom_core.config import Budget, TrainConfig, build_config
from utom_core.errors import Interrupted, UtomError
from utom_core.evaluation.guide import guide
from utom_core.io.atomic import write_json
from utom_core.plugins import Resolved, get_registry
from utom_core.records import RunRecord
from utom_core.run_folders import METRICS_FILE
from utom_core.task import Task
from utom_core.training.supervised import NoPairs
from utom_core.workflow.end_to_end import run_workflow

BENCH_JSON = "bench.json"
BENCH_MD = "bench.md"
SPEED_MD = "speed.md"
"""Written by benchmarks/run_all.py into a bench folder; appended to bench.md."""
FLOOR, CEILING = "input (floor)", "supervised (ceiling)"
"""Reference rows of the table, never marked best."""
BENCH_SETTINGS = ("ngf", "n_blocks", "ndf", "tile", "iterations", "residual")
"""Training settings recorded with every bench row."""
HIGHER_IS_BETTER = ("psnr", "ssim", "iou", "dice", "intersection")
"""Metric name parts where larger values are better (others, e.g. distances, are lower-better)."""


@dataclass(frozen=True)
class BenchRun:
    task: Task
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task.name}/{self.method}/seed{self.seed}"


def applicable(resolved: Resolved, cfg: TrainConfig) -> str | None:
    """Why the resolved method cannot run on its task with ``cfg`` (None when it can)."""
    task = resolved.task
    channels = (task.domain_a.channels, task.domain_b.channels)
    return resolved.method.not_applicable(cfg, channels)


def load_results(out: Path) -> dict[str, dict[str, Any]]:
    path = out / BENCH_JSON
    if not path.exists():
        return {}
    try:
        return {row["key"]: row for row in json.loads(path.read_text())["runs"]}
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UtomError(f"{path}: not a utom bench file; choose another --out") from None


def save_results(out: Path, results: dict[str, dict[str, Any]], budget: Budget) -> None:
    write_json(out / BENCH_JSON, {"budget": budget.value, "runs": list(results.values())})


def _base_row(run: BenchRun) -> dict[str, Any]:
    return {"key": run.key, "task": run.task.name, "plugin": run.task.plugin,
            "method": run.method, "seed": run.seed}


def failed_row(run: BenchRun, err: BaseException, seconds: float) -> dict[str, Any]:
    """The bench row of a run that raised: the first line of its error and a short trace."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return {**_base_row(run), "status": "failed", "error": f"{type(err).__name__}: {message}",
            "traceback": "".join(traceback.format_exception(err, limit=4)),
            "wall_seconds": round(seconds, 1)}


def run_one(run: BenchRun, budget: Budget, out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """One bench row: the task's workflow, or the reason it failed or does not apply."""
    row = _base_row(run)
    start = time.perf_counter()
    try:
        cfg = build_config(*run.task.config_layers(budget), overrides,
                           {"method": run.method, "seed": run.seed}, source="bench")
        resolved = get_registry().resolve(run.task, cfg)
        reason = applicable(resolved, cfg)
        if reason:
            return {**row, "status": "not applicable", "error": reason}
        outcome = run_workflow(resolved, cfg, budget, out / "runs" / run.key, None,
                               overwrite=True, show_progress=False)
    except NoPairs as err:
        return {**row, "status": "not applicable", "error": str(err)}
    except Interrupted:  # Ctrl-C or SIGTERM stops the bench: not a failure of the run
        raise
    except Exception as err:  # a failing task is recorded, not fatal
        return failed_row(run, err, time.perf_counter() - start)
    record = outcome.record
    assert record is not None, "a bench run is its own rank 0"
    return {**row, "status": "ok", "metrics": record.metrics,
            "iterations": record.iterations, "wall_seconds": record.wall_seconds,
            "train_seconds": record.train_seconds,
            "settings": {k: getattr(record.config, k) for k in BENCH_SETTINGS},
            "threads": torch.get_num_threads(),
            "versions": record.versions.model_dump(), "machine": record.machine.model_dump(),
            "run_dir": str(outcome.out_dir)}


def run_in_worker(task: str, method: str, seed: int, budget: Budget, out: Path,
                  overrides: dict[str, Any], threads: int) -> dict[str, Any]:
    """``run_one`` in a fresh worker process (``--jobs``): the task is looked up by name in the
    worker's own plugin registry, and torch gets its share of the cores."""
    torch.set_num_threads(threads)
    run = BenchRun(get_registry().tasks[task], method, seed)
    return run_one(run, budget, out, overrides)


def is_complete(row: dict[str, Any] | None, out: Path) -> bool:
    if row is None or row["status"] == "failed":
        return False
    return row["status"] != "ok" or RunRecord.read(Path(row["run_dir"]) / METRICS_FILE) is not None


def better(metric: str) -> int:
    """+1 when larger is better, -1 when smaller is better."""
    return 1 if any(part in metric for part in HIGHER_IS_BETTER) else -1


def merit(metric: str, value: float) -> float:
    """``value`` on a scale where larger is better: a ratio whose ideal is 1 (``anisotropy``,
    by its guide) by its distance from 1, others by ``better``'s direction."""
    if guide(metric).better == "one":
        return -abs(math.log(value)) if value > 0 else -math.inf
    return better(metric) * value


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """task → method → metric → values across seeds (floor rows from the inputs' metrics)."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in results:
        if row["status"] != "ok":
            continue
        methods = table.setdefault(row["task"], {})
        for metric, value in row["metrics"].items():
            if metric.endswith("_input"):
                floor = methods.setdefault(FLOOR, {})
                floor.setdefault(metric.removesuffix("_input"), []).append(value)
            else:
                paired = get_registry().method(row["method"]).paired
                name = CEILING if paired else row["method"]
                methods.setdefault(name, {}).setdefault(metric, []).append(value)
    last = (CEILING, FLOOR)  # reference rows below the methods they frame
    return {task: dict(sorted(methods.items(), key=lambda item: last.index(item[0]) + 1
                              if item[0] in last else 0))
            for task, methods in table.items()}


def cell(values: list[float]) -> str:
    """Mean ± relative spread (std / |mean|) across seeds, e.g. ``0.71 ± 1.6%``."""
    mean = float(np.mean(values))
    if len(values) < 2 or mean == 0 or not np.isfinite(mean):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {100 * _relative_spread(values):.1f}%"


def _relative_spread(values: list[float]) -> float:
    mean = float(np.mean(values))
    return float(np.std(values)) / abs(mean) if mean else float("inf")


def _verdict(holds: bool) -> str:
    return "holds" if holds else "**does not hold**"


SALIENCY_PAIRS = (("utom", "cyclegan", "## The paper's claims on this bench"),
                  ("utom-cut", "cut", "## Does the saliency constraint help CUT?"))
"""(with the constraint, without it, section): the comparisons the report checks."""
LABELS = {"utom": "UTOM", "cyclegan": "CycleGAN", "utom-cut": "UTOM-CUT", "cut": "CUT"}
"""How the claims name the methods (as the papers do)."""


def _pair_rows(task: str, methods: dict[str, dict[str, list[float]]], with_: str,
               without: str) -> list[str]:
    """Mean and seed spread of SSIM/PSNR, and content IoU, of a method with the saliency
    constraint against the same method without it."""
    on, off = methods.get(with_), methods.get(without)
    if not (on and off):
        return []
    with_, without = LABELS.get(with_, with_), LABELS.get(without, without)
    lines = []
    for metric in ("ssim", "psnr"):
        if metric in on and metric in off:
            u, c = float(np.mean(on[metric])), float(np.mean(off[metric]))
            lines.append(f"| {task} | {with_} {metric} ≥ {without} | {u:.4g} vs {c:.4g} | "
                         f"{_verdict(u >= c)} |")
            su, sc = _relative_spread(on[metric]), _relative_spread(off[metric])
            lines.append(f"| {task} | {with_} {metric} spread < {without} | {100 * su:.1f}% vs "
                         f"{100 * sc:.1f}% | {_verdict(su < sc)} |")
    if "content_iou" in on and "content_iou" in off:
        u, c = float(np.mean(on["content_iou"])), float(np.mean(off["content_iou"]))
        lines.append(f"| {task} | {with_} content IoU > {without} | {u:.3f} vs {c:.3f} | "
                     f"{_verdict(u > c)} |")
    return lines


def _floor_rows(task: str, methods: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = []
    for metric, values in methods.get(FLOOR, {}).items():
        if guide(metric).better == "input":  # to be kept, not beaten (lateral resolution)
            continue
        level = float(np.mean(values))
        below = [f"{m} {float(np.mean(v[metric])):.4g}" for m, v in methods.items()
                 if m != FLOOR and metric in v
                 and merit(metric, float(np.mean(v[metric]))) <= merit(metric, level)]
        lines.append(f"| {task} | every method beats the floor on {metric} ({level:.4g}) | "
                     f"{'below: ' + ', '.join(below) if below else 'all above'} | "
                     f"{_verdict(not below)} |")
    return lines


def claims(table: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    """The paper's claims (UTOM vs CycleGAN on mean and spread of SSIM/PSNR and on content
    IoU, which methods stay below the input floor) and the same test of the saliency
    constraint on CUT (utom-cut vs cut), each section where the bench ran both methods."""
    lines: list[str] = []
    for number, (with_, without, title) in enumerate(SALIENCY_PAIRS):
        rows = [row for task, methods in table.items()
                for row in (_pair_rows(task, methods, with_, without)
                            + (_floor_rows(task, methods) if number == 0 else []))]
        if rows:
            lines += [title, "", "| task | claim | measured | verdict |", "|---|---|---|---|",
                      *rows, ""]
    return lines


def speed(results: list[dict[str, Any]]) -> list[str]:
    """Seconds of training per iteration per method (mean over the tasks and seeds run)."""
    per: dict[str, list[float]] = {}
    for row in results:
        if row["status"] == "ok" and row.get("train_seconds") and row.get("iterations"):
            per.setdefault(row["method"], []).append(row["train_seconds"] / row["iterations"])
    if not per:
        return []
    return ["## Seconds per iteration", "", "| method | s/iteration | runs |", "|---|---|---|",
            *[f"| {m} | {float(np.mean(v)):.3f} | {len(v)} |" for m, v in per.items()], ""]


def markdown(results: list[dict[str, Any]], budget: Budget, appendix: str = "") -> str:
    """The bench report; ``appendix`` (e.g. the speed benchmarks' figures) goes at the end."""
    table = summarise(results)
    lines = [f"# utom bench (budget {budget.value})", "",
             "Mean over seeds ± relative spread (std / mean). Best unpaired method per metric in "
             f"bold; `{FLOOR}` scores the untransformed input against the reference; "
             f"`{CEILING}` is a U-Net trained with L1 on aligned pairs of the training region "
             "with the same budget.", ""]
    for task, methods in table.items():
        metrics = sorted({m for values in methods.values() for m in values})
        lines += [f"## {task}", "", "| method | " + " | ".join(metrics) + " |",
                  "|---" * (len(metrics) + 1) + "|"]
        best = {}
        for metric in metrics:
            scored = {m: merit(metric, float(np.mean(v[metric])))
                      for m, v in methods.items() if metric in v and m not in (FLOOR, CEILING)
                      and guide(metric).better != "input"}  # a kept value has no winner
            best[metric] = max(scored, key=lambda m: scored[m]) if scored else None
        for method, values in methods.items():
            cells = []
            for metric in metrics:
                text = cell(values[metric]) if metric in values else "–"
                cells.append(f"**{text}**" if best[metric] == method else text)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += claims(table) + speed(results)
    other = [r for r in results if r["status"] != "ok"]
    if other:
        lines += ["## Runs without metrics", "", "| run | status | reason |", "|---|---|---|"]
        lines += [f"| {r['key']} | {r['status']} | {r['error']} |" for r in other]
        lines.append("")
    wall = sum(r.get("wall_seconds", 0) for r in results)
    lines += [f"Total run time: {wall / 60:.1f} min over {len(results)} runs.", ""]
    if appendix:
        lines += [appendix.strip(), ""]
    return "\n".join(lines)
