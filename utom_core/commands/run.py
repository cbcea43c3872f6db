"""``utom run TASK``: the main job — data, training, prediction, evaluation and report."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from utom_core.commands.common import PATHS, assemble_config, training_options
from utom_core.config import Budget
from utom_core.console import console
from utom_core.errors import UtomError
from utom_core.plugins import get_registry
from utom_core.workflow.run import run_workflow
from utom_core.workflow.userdata import user_data


@click.command("run")
@click.argument("task_name", metavar="TASK")
@click.option("--a", "a_paths", multiple=True, type=PATHS, help="Domain A images (repeatable).")
@click.option("--b", "b_paths", multiple=True, type=PATHS, help="Domain B images (repeatable).")
@click.option("--test", "test_paths", multiple=True, type=PATHS,
              help="Held-out domain A images to predict and evaluate (repeatable).")
@click.option("--reference", "reference_paths", multiple=True, type=PATHS,
              help="Ground truth or reference per --test image (repeatable, same order).")
@click.option("--out", type=PATHS, default=None,
              help="Output folder (default: utom-runs/TASK-BUDGET-TIME).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@training_options
def run_command(task_name: str, a_paths, b_paths, test_paths, reference_paths, out: Path | None,
                overwrite: bool, budget: str, method, iterations, seed, config_file, overrides,
                threshold_a, threshold_b) -> None:
    """Run TASK end to end; with no --a/--b it uses the task's bundled demo data."""
    task = get_registry().task(task_name)
    cfg = assemble_config(task, budget, method, iterations, seed, config_file, overrides,
                          threshold_a, threshold_b)
    if bool(a_paths) != bool(b_paths):
        raise UtomError("give both --a and --b, or neither to use the demo data")
    if (test_paths or reference_paths) and not a_paths:
        raise UtomError("--test/--reference go with --a and --b")
    data = None
    if a_paths:
        data = user_data(list(a_paths), list(b_paths), list(test_paths), list(reference_paths),
                         np.random.default_rng(cfg.seed))
    if out is None:
        out = Path("utom-runs") / f"{task.name}-{budget}-{time.strftime('%Y%m%d-%H%M%S')}"
    outcome = run_workflow(task, cfg, Budget(budget), out, data, overwrite=overwrite)
    console.print(outcome.summary, soft_wrap=True, markup=False)
