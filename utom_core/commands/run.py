"""``utom run TASK``: the main job — data, training, prediction, evaluation and report."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from utom_core.commands.common import (
    PATHS,
    assemble_config,
    resolve_run,
    time_budget,
    training_options,
    use_threads,
)
from utom_core.commands.predict import views_option
from utom_core.config import Budget
from utom_core.console import console
from utom_core.errors import UtomError
from utom_core.plugins import get_registry
from utom_core.workflow.end_to_end import run_workflow
from utom_core.workflow.holdout import GUARD_GAP, hold_out, parse_region
from utom_core.workflow.userdata import user_data


@click.command("run")
@click.argument("task_name", metavar="TASK")
@click.option("--a", "a_paths", multiple=True, type=PATHS, help="Domain A images (repeatable).")
@click.option("--b", "b_paths", multiple=True, type=PATHS, help="Domain B images (repeatable).")
@click.option("--test", "test_paths", multiple=True, type=PATHS,
              help="Held-out domain A images to predict and evaluate (repeatable).")
@click.option("--reference", "reference_paths", multiple=True, type=PATHS,
              help="Ground truth or reference per --test image or --test-region (repeatable, "
              "same order).")
@click.option("--test-region", "regions", multiple=True, metavar="ROWS,COLUMNS",
              callback=lambda c, p, v: [parse_region(text) for text in v],
              help="Hold this region of the one --a image out of training and test on it "
              "(repeatable), e.g. ':,0.4:0.6' (all rows, columns 40-60%) or '0:512,0:512' "
              f"(pixels); {GUARD_GAP}-px guard gaps around it are not trained on either.")
@click.option("--out", type=PATHS, default=None,
              help="Output folder (default: utom-runs/TASK-BUDGET-TIME).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@views_option
@training_options
@click.pass_context
def run_command(ctx: click.Context, task_name: str, a_paths, b_paths, test_paths,
                reference_paths, regions, out: Path | None, overwrite: bool, views: int,
                budget: str, method, iterations, minutes, hours, seed, config_file, overrides,
                threshold_a, threshold_b, threads) -> None:
    """Run TASK end to end; with no --a/--b it uses the task's bundled demo data."""
    use_threads(threads)
    registry = get_registry()
    task = registry.task(task_name)
    cfg = assemble_config(task, budget, method, iterations, seed, config_file, overrides,
                          threshold_a, threshold_b, time_budget(ctx, minutes, hours, overrides))
    resolved = resolve_run(registry, task, cfg)
    if bool(a_paths) != bool(b_paths):
        raise UtomError("give both --a and --b, or neither to use the demo data")
    if (test_paths or reference_paths or regions) and not a_paths:
        raise UtomError("--test/--test-region/--reference go with --a and --b")
    if regions and test_paths:
        raise UtomError("--test-region: give --test images or test regions of --a, not both")
    data, held_out = None, None
    if regions:
        held_out = hold_out(task, list(a_paths), list(b_paths), regions, list(reference_paths),
                            cfg.tile, resolved.formats)
    if a_paths:
        data = user_data(list(a_paths), list(b_paths), list(test_paths),
                         [] if regions else list(reference_paths),
                         np.random.default_rng(cfg.seed), resolved.formats)
    if out is None:
        out = Path("utom-runs") / f"{task.name}-{budget}-{time.strftime('%Y%m%d-%H%M%S')}"
    outcome = run_workflow(resolved, cfg, Budget(budget), out, data, overwrite=overwrite,
                           held_out=held_out, views=views)
    console.print(outcome.summary, soft_wrap=True, markup=False)
    if outcome.warning:
        console.print(outcome.warning, soft_wrap=True, markup=False, style="yellow")
