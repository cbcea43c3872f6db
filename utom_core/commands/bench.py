"""``utom bench``: compare methods across every registered task and several seeds."""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click
import torch
from rich.live import Live
from rich.table import Table

from utom_core.bench import (
    BENCH_MD,
    SPEED_MD,
    BenchRun,
    failed_row,
    is_complete,
    load_results,
    markdown,
    run_in_worker,
    run_one,
    save_results,
    summarise,
)
from utom_core.commands.common import THREADS_OPTION, use_threads
from utom_core.config import Budget
from utom_core.config_layers import parse_overrides
from utom_core.console import console
from utom_core.errors import Interrupted, UtomError
from utom_core.evaluation.figures.bars import bar_plot
from utom_core.io.atomic import write_text
from utom_core.plugins import get_registry


def _names(text: str | None, known: list[str], what: str) -> list[str]:
    if not text:
        return known
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UtomError(f"--{what}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _live_table(rows: dict[str, dict], plan: list[BenchRun]) -> Table:
    table = Table(title="utom bench")
    for column in ("run", "status", "minutes", "key metrics"):
        table.add_column(column)
    for run in plan:
        row = rows.get(run.key)
        if row is None:
            table.add_row(run.key, "pending", "", "")
            continue
        shown = ", ".join(f"{k} {v:.3g}" for k, v in row.get("metrics", {}).items()
                          if k in ("psnr", "ssim", "content_iou"))
        table.add_row(run.key, row["status"], f"{row.get('wall_seconds', 0) / 60:.1f}",
                      shown or row.get("error", "")[:60])
    return table


def _finished_runs(plan: list[BenchRun], budget: Budget, out: Path, settings: dict[str, Any],
                   jobs: int) -> Iterator[tuple[BenchRun, dict[str, Any]]]:
    """Each run with its row, as runs finish. With ``jobs`` > 1 the runs go to worker processes
    that share the cores: small networks use two single-thread processes better than one
    two-thread process."""
    if jobs == 1:
        for run in plan:
            yield run, run_one(run, budget, out, settings)
        return
    threads = max(1, torch.get_num_threads() // jobs)  # the usable CPUs (use_threads) shared
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        started = time.perf_counter()
        futures = {pool.submit(run_in_worker, run.task.name, run.method, run.seed,
                               budget, out, settings, threads): run for run in plan}
        try:
            for future in as_completed(futures):
                run = futures[future]
                try:
                    row = future.result()
                except Interrupted:  # the Ctrl-C reached the worker's training too
                    raise
                except Exception as err:  # the worker died (killed, out of memory): recorded
                    row = failed_row(run, err, time.perf_counter() - started)
                yield run, row
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


LOCK_FILE = ".bench.lock"


@contextlib.contextmanager
def _only_bench(out: Path) -> Iterator[None]:
    """Hold ``out`` for this bench: a second bench into it is refused (both would run, and
    replace, the same runs), not left to record the other's half-written runs as failed."""
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UtomError(f"{out}: another utom bench is running into it; wait for it to end "
                            "or choose another --out") from None
        yield
    finally:
        os.close(fd)


@click.command("bench")
@click.option("--tasks", default=None, help="Comma-separated task names (default: all).")
@click.option("--methods", default=None,
              help="Comma-separated method names (default: every registered method).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--budget", type=click.Choice([b.value for b in Budget]), default="bench",
              show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a training setting for every run (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once, each in its own process with an equal share of the threads.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@THREADS_OPTION
def bench_command(tasks: str | None, methods: str | None, seeds: int, budget: str,
                  overrides: tuple[str, ...], jobs: int, out: Path, threads: int | None) -> None:
    """Run every task × method × seed and write bench.json, bench.md and plots to --out."""
    use_threads(threads)
    registry = get_registry()
    task_names = _names(tasks, list(registry.tasks), "tasks")
    method_names = _names(methods, list(registry.methods), "methods")
    settings = parse_overrides(overrides)
    plan = [BenchRun(registry.tasks[t], m, s)
            for t in task_names for m in method_names for s in range(seeds)]
    out.mkdir(parents=True, exist_ok=True)
    with _only_bench(out):
        results = load_results(out)
        chosen = Budget(budget)
        todo = [run for run in plan if not is_complete(results.get(run.key), out)]
        try:
            with Live(_live_table(results, plan), console=console, refresh_per_second=2) as live:
                for run, row in _finished_runs(todo, chosen, out, settings, jobs):
                    results[run.key] = row
                    save_results(out, results, chosen)
                    live.console.print(f"{run.key}: {row['status']}"
                                       + (f" ({row['error']})" if "error" in row else ""))
                    live.update(_live_table(results, plan))
        except (Interrupted, KeyboardInterrupt):
            raise Interrupted(f"{out}: bench interrupted; the {len(results)} run(s) done are kept "
                              "in bench.json; run the same command to continue") from None
        finally:
            if not console.is_terminal:  # a log: the table's last line ends there
                console.line()
        _report(out, plan, results, chosen)


def _report(out: Path, plan: list[BenchRun], results: dict[str, dict], chosen: Budget) -> None:
    """bench.md and a bar plot per metric, from every row done."""
    ordered = [results[run.key] for run in plan if run.key in results]
    speed = out / SPEED_MD
    appendix = speed.read_text(encoding="utf-8") if speed.is_file() else ""
    write_text(out / BENCH_MD, markdown(ordered, chosen, appendix))
    table = summarise(ordered)
    metrics = sorted({m for methods_ in table.values() for v in methods_.values() for m in v})
    for metric in metrics:
        groups = {task: {method: values[metric] for method, values in methods_.items()
                         if metric in values} for task, methods_ in table.items()}
        bar_plot(out / f"bench_{metric}.png", metric, groups)
    failed = sum(1 for row in ordered if row["status"] == "failed")
    console.print(f"bench: {len(ordered)} runs ({failed} failed) → {out / BENCH_MD}")
