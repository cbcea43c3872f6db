"""``utom train``: learn G: A→B and F: B→A from two unpaired image collections."""

from __future__ import annotations

from pathlib import Path

import click

from utom_core.commands.common import PATHS, assemble_config, training_options
from utom_core.console import console
from utom_core.plugins import get_registry
from utom_core.training.train import train


@click.command("train")
@click.argument("task_name", metavar="TASK")
@click.option("--a", "a_paths", multiple=True, type=PATHS,
              help="Domain A image or folder (repeatable).")
@click.option("--b", "b_paths", multiple=True, type=PATHS,
              help="Domain B image or folder (repeatable); never aligned pairs of --a.")
@click.option("--out", "run_dir", required=True, type=PATHS, help="Run directory to create.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@training_options
def train_command(task_name: str, a_paths: tuple[Path, ...], b_paths: tuple[Path, ...],
                  run_dir: Path, resume: bool, overwrite: bool, budget: str, method: str | None,
                  iterations: int | None, seed: int | None, config_file: Path | None,
                  overrides: tuple[str, ...], threshold_a, threshold_b) -> None:
    """Train TASK on unpaired images of domain A (--a) and domain B (--b)."""
    task = get_registry().task(task_name)
    cfg = assemble_config(task, budget, method, iterations, seed, config_file, overrides,
                          threshold_a, threshold_b)
    result = train(task, cfg, run_dir, list(a_paths), list(b_paths), resume=resume,
                   overwrite=overwrite, iterations=iterations if resume else None)
    state = "interrupted at" if result.interrupted else "finished"
    console.print(f"{task.name}: {state} iteration {result.iteration}; run in {run_dir}")
    if result.interrupted:
        raise SystemExit(130)
