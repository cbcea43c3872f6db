"""``utom train``: learn G: A→B (and F: B→A, two-sided methods) from two unpaired image
collections."""

from __future__ import annotations

from pathlib import Path
from shlex import quote

import click

from utom_core.commands.common import (
    PATHS,
    assemble_config,
    resolve_run,
    resume_changes,
    resumed_config,
    time_budget,
    training_options,
    use_threads,
)
from utom_core.console import console
from utom_core.errors import UtomError
from utom_core.plugins import get_registry
from utom_core.trained import RunMeta
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
@click.option("--val", "val_paths", multiple=True, type=PATHS,
              help="Held-out domain A image validated every val_every iterations (repeatable).")
@click.option("--val-reference", "val_references", multiple=True, type=PATHS,
              help="Ground truth of each --val image (repeatable, same order): PSNR and SSIM.")
@training_options(paired=False)
@click.pass_context
def train_command(ctx: click.Context, task_name: str, a_paths: tuple[Path, ...],
                  b_paths: tuple[Path, ...], run_dir: Path, resume: bool, overwrite: bool,
                  val_paths: tuple[Path, ...], val_references: tuple[Path, ...],
                  budget: str, method: str | None, iterations: int | None,
                  minutes: float | None, hours: float | None, seed: int | None,
                  config_file: Path | None, overrides: tuple[str, ...], threshold_a,
                  threshold_b, threads: int | None) -> None:
    """Train TASK on unpaired images of domain A (--a) and domain B (--b).

    With --resume (the command that started the run, with --resume added, or just TASK --out
    RUN --resume), only --iterations and --set iterations, checkpoint_every, log_every,
    preview_every, val_every, num_workers, compile, channels_last or white_balance may change:
    the run keeps every other setting it was trained with (and its validation images); an
    option equal to the run's own is accepted. --minutes M plans the iterations to fill M
    minutes of training (a resumed run keeps the plan). Under torchrun
    (``torchrun --nproc-per-node N -m utom_core train …``) every rank trains; rank 0 writes."""
    use_threads(threads)
    registry = get_registry()
    task = registry.task(task_name)
    cfg = assemble_config(task, budget, method, iterations, seed, config_file, overrides,
                          threshold_a, threshold_b, time_budget(ctx, minutes, hours, overrides))
    saved = resumed_config(run_dir) if resume else cfg
    changes = resume_changes(ctx, task, overrides, cfg, saved) if resume else {}
    resolved = resolve_run(registry, task, saved)
    result = train(task, cfg, run_dir, list(a_paths), list(b_paths), method=resolved.method,
                   build_generator=resolved.build_generator, formats=resolved.formats,
                   resume=resume, overwrite=overwrite, changes=changes,
                   val=validation_pairs(val_paths, val_references))
    state = "interrupted at" if result.interrupted else "finished"
    again = f"; resume with: utom train {quote(task.name)} --resume --out {quote(str(run_dir))}"
    console.print(f"{task.name}: {state} iteration {result.iteration}; run in {run_dir}"
                  + (f"; content thresholds {thresholds(result.meta)}" if result.meta else "")
                  + (again if result.interrupted else ""), soft_wrap=True, markup=False)
    if result.meta and result.meta.range_note:
        console.print(f"warning: {result.meta.range_note}", soft_wrap=True, markup=False,
                      style="yellow")
    if result.interrupted:
        raise SystemExit(130)


def thresholds(meta: RunMeta) -> str:
    """``A 22617 (37.6% content), B 220 (40.8% content)``, as ``utom threshold`` says them."""
    def one(side: str, value: float, fraction: float | None, source: str | None) -> str:
        said = [f"{fraction:.1%} content"] if fraction is not None else []
        said += [source] if source else []
        return f"{side} {value:.6g}" + (f" ({', '.join(said)})" if said else "")

    return (one("A", meta.threshold_a, meta.content_fraction_a, meta.threshold_source_a)
            + ", " + one("B", meta.threshold_b, meta.content_fraction_b, meta.threshold_source_b))


def validation_pairs(images: tuple[Path, ...], references: tuple[Path, ...]
                     ) -> list[tuple[Path, Path | None]]:
    """--val images with their --val-reference, if given (one for each, in order)."""
    if references and len(references) != len(images):
        raise UtomError(f"--val-reference: {len(references)} given for {len(images)} --val "
                        "image(s); give one for each, in the same order, or none")
    return list(zip(images, references or [None] * len(images), strict=True))
