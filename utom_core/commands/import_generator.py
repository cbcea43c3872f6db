"""``utom import-generator``: a generator trained with the authors' code as a utom run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from utom_core.commands.common import PATHS
from utom_core.console import console
from utom_core.plugins import get_registry

if TYPE_CHECKING:
    from utom_core.trained import Direction


@click.command("import-generator")
@click.argument("weights", type=PATHS)
@click.option("--task", "task_name", required=True, help="Task the generator was trained for.")
@click.option("--out", required=True, type=PATHS, help="Run directory to create.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b",
              show_default=True, help="What the generator translates: a2b for their G_A "
                                      "(latest_net_G_A.pth), b2a for G_B.")
@click.option("--threshold-a", type=float, default=None,
              help="Domain A content threshold in 8-bit units (their threshold_A) "
                   "[default: the task's 8-bit one, else theirs, 70].")
@click.option("--threshold-b", type=float, default=None,
              help="Domain B content threshold in 8-bit units (their threshold_B) "
                   "[default: the task's 8-bit one, else theirs, 220].")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
def import_generator_command(weights: Path, task_name: str, out: Path, direction: Direction,
                             threshold_a: float | None, threshold_b: float | None,
                             overwrite: bool) -> None:
    """Make run directory --out from WEIGHTS, a generator state dict of the authors' code
    (ResNet 6/9 blocks or U-Net 128/256, instance or batch norm): `utom predict` and
    `utom export` then use it like any run, in their 8-bit intensities."""
    from utom_core.export.imported import import_generator

    registry = get_registry()
    task = registry.task(task_name)
    layout = import_generator(weights, task, out, direction, threshold_a, threshold_b,
                              build_generator=registry.build_generator, overwrite=overwrite)
    console.print(f"{weights}: {layout.describe()} imported as the {direction} generator of "
                  f"task {task.name} into {out}", markup=False, soft_wrap=True)
