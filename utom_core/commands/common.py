"""Options and config assembly shared by ``train``, ``run`` and ``bench``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from utom_core.config import (
    BUDGET_NOTES,
    RESUME_SETTINGS,
    Budget,
    TrainConfig,
    build_config,
    load_config_file,
    parse_overrides,
)
from utom_core.errors import InputError, UtomError, first_line
from utom_core.methods import BUILTIN
from utom_core.plugins import Registry, Resolved
from utom_core.run_folders import check_run_dir
from utom_core.task import Task
from utom_core.trained import CHECKPOINT_FILE, CONFIG_FILE, load_run

PATHS = click.Path(path_type=Path)


def threshold_value(text: str | None) -> float | str | None:
    """--threshold-a/-b: a number in raw units, or "auto"."""
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a number nor 'auto'") from None


def budget_help() -> str:
    """Each budget's expected time and result, for --help."""
    return "Preset of network size, tile size and iterations: " + "; ".join(
        f"{budget.value} ({note})" for budget, note in BUDGET_NOTES.items()) + "."


def training_options(command: Callable[..., Any] | None = None, *, paired: bool = True) -> Any:
    """Options every training entry point accepts; ``paired``: whether it offers the
    supervised ceiling (``@training_options`` or ``@training_options(paired=False)``)."""
    if command is None:
        return lambda decorated: training_options(decorated, paired=paired)
    offered = [m.name for m in BUILTIN if paired or not m.paired]
    options = [
        click.option("--budget", type=click.Choice([b.value for b in Budget]), default="demo",
                     show_default=True, help=budget_help()),
        click.option("--method", default=None, metavar="NAME",
                     help="Training method (default: utom): " + ", ".join(offered)
                     + ", or a plugin's (`utom methods` lists them)."),
        click.option("--iterations", type=click.IntRange(min=1), default=None,
                     help="Total iterations of the run (overrides the budget)."),
        click.option("--seed", type=int, default=None, help="Seed of every random choice."),
        click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                     default=None, help="TOML file of TrainConfig settings."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override one setting (repeatable), e.g. --set ngf=32."),
        click.option("--threshold-a", callback=lambda c, p, v: threshold_value(v),
                     help="Domain A content threshold in raw units, or 'auto'."),
        click.option("--threshold-b", callback=lambda c, p, v: threshold_value(v),
                     help="Domain B content threshold in raw units, or 'auto'."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def assemble_config(task: Task, budget: str, method: str | None, iterations: int | None,
                    seed: int | None, config_file: Path | None, overrides: tuple[str, ...],
                    threshold_a: float | str | None,
                    threshold_b: float | str | None) -> TrainConfig:
    """Budget preset < task defaults < config file < --set < explicit options.

    The config file and --set are validated on their own first, so a wrong value is reported
    where the user wrote it."""
    explicit = {key: value for key, value in dict(
        method=method, iterations=iterations, seed=seed,
        threshold_a=threshold_a, threshold_b=threshold_b,
    ).items() if value is not None}
    given = [(load_config_file(config_file), str(config_file))] if config_file else []
    given.append((parse_overrides(overrides), "--set"))
    for layer, source in given:
        build_config(layer, source=source)
    return build_config(*task.config_layers(Budget(budget)), *(layer for layer, _ in given),
                        explicit, source="settings")


def resolve_run(registry: Registry, task: Task, cfg: TrainConfig) -> Resolved:
    """Every name a run of ``task`` with ``cfg`` uses, resolved before any image is read: a
    missing method (named as the option that sets it), generator or evaluator is refused in
    one line."""
    try:
        return registry.resolve(task, cfg)
    except UtomError as err:
        if cfg.method in registry.methods:
            raise
        raise UtomError(f"--method: {err}") from None


def resumed_config(run_dir: Path) -> TrainConfig:
    """The settings of the run to resume in ``run_dir``, read before its checkpoint is loaded
    so that its method and generator are resolved up front (its config.json, which every run
    writes before its first checkpoint; else the checkpoint's own)."""
    check_run_dir(run_dir, resume=True, overwrite=False)  # nothing to resume: said first
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return load_run(run_dir / CHECKPOINT_FILE)[0]
    try:
        return TrainConfig.saved(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read the run's settings ({first_line(err)})") from None


FIXED_ON_RESUME = ("budget", "method", "seed", "config_file", "threshold_a", "threshold_b")
"""Options that would change what a resumed run learns."""


def resume_settings(ctx: click.Context, overrides: tuple[str, ...]) -> set[str]:
    """The settings given with --resume, all of them in RESUME_SETTINGS: any other setting
    is refused, never silently ignored (the run keeps the settings it was trained with)."""
    allowed = ", ".join(f"{key}=" for key in sorted(RESUME_SETTINGS))
    rule = (f"a resumed run keeps the settings it was trained with; with --resume only "
            f"--iterations and --set {allowed} may change")
    for param in ctx.command.params:
        if param.name in FIXED_ON_RESUME and \
                ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT:
            raise UtomError(f"{param.opts[0]}: {rule}")
    given = set(parse_overrides(overrides))
    if ctx.params.get("iterations") is not None:
        given.add("iterations")
    fixed = sorted(given - RESUME_SETTINGS)
    if fixed:
        raise UtomError(f"--set {fixed[0]}: {rule}")
    return given
