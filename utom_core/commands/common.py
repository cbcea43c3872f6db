"""Options and config assembly shared by ``train``, ``run`` and ``bench``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from utom_core import threads
from utom_core.config import (
    BUDGET_NOTES,
    BUDGETS,
    RESUME_SETTINGS,
    Budget,
    TrainConfig,
    build_config,
)
from utom_core.config_layers import load_config_file, parse_overrides
from utom_core.errors import InputError, UtomError, first_line
from utom_core.methods import BUILTIN
from utom_core.plugins import Registry, Resolved
from utom_core.run_folders import check_run_dir
from utom_core.task import Task
from utom_core.threads import Threads
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
        click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Train for about this many minutes: a short trial times the step and "
                     "sets the iterations to fill them (instead of --iterations)."),
        click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="As --minutes, in hours."),
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
    options.append(THREADS_OPTION)
    for option in reversed(options):
        command = option(command)
    return command


THREADS_OPTION = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="CPU threads of torch [default: the CPUs this process may use: OMP_NUM_THREADS, "
    "SLURM_CPUS_PER_TASK, else CPU affinity and cgroup quota].")


def use_threads(count: int | None) -> Threads:
    """Give torch ``count`` threads (None: the CPUs this process may use), said by the first
    progress line."""
    return threads.apply(threads.usable_threads(count))


def time_budget(ctx: click.Context, minutes: float | None, hours: float | None,
                overrides: tuple[str, ...]) -> float | None:
    """Minutes of training asked by --minutes or --hours (one of them), never with a count of
    iterations (--iterations, --set iterations=)."""
    if minutes is not None and hours is not None:
        raise UtomError("--hours: give --minutes or --hours, not both")
    asked = hours * 60 if hours is not None else minutes
    if asked is not None and (ctx.params.get("iterations") is not None
                              or "iterations" in parse_overrides(overrides)):
        option = "--hours" if hours is not None else "--minutes"
        raise UtomError(f"{option}: a time budget sets the iterations; give it or "
                        "--iterations, not both")
    return asked


def assemble_config(task: Task, budget: str, method: str | None, iterations: int | None,
                    seed: int | None, config_file: Path | None, overrides: tuple[str, ...],
                    threshold_a: float | str | None, threshold_b: float | str | None,
                    minutes: float | None = None) -> TrainConfig:
    """Budget preset < task defaults < config file < --set < explicit options.

    The config file and --set are validated on their own first, so a wrong value is reported
    where the user wrote it."""
    explicit = {key: value for key, value in dict(
        method=method, iterations=iterations, seed=seed,
        threshold_a=threshold_a, threshold_b=threshold_b, minutes=minutes,
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
    """The settings of the run to resume in ``run_dir``, read first so that its method and
    generator are resolved up front: those of its checkpoint, which training continues from
    (config.json can be ahead of it: a resume that changed the total and then failed to save
    its first checkpoint has written it); config.json only where there is no checkpoint."""
    check_run_dir(run_dir, resume=True, overwrite=False)  # nothing to resume: said first
    if (run_dir / CHECKPOINT_FILE).is_file():
        return load_run(run_dir / CHECKPOINT_FILE)[0]
    path = run_dir / CONFIG_FILE
    try:
        return TrainConfig.saved(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read the run's settings ({first_line(err)})") from None


EXPLICIT = ("method", "seed", "threshold_a", "threshold_b", "iterations", "minutes")
"""Options that each set the setting of the same name."""


def _given_settings(ctx: click.Context, task: Task, overrides: tuple[str, ...]
                    ) -> list[tuple[str, set[str]]]:
    """Each option given on the command line with the settings it sets, the one that wins
    first (explicit options, --set, --config, --budget)."""
    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    options = [(f"--{name.replace('_', '-')}", {name}) for name in EXPLICIT
               if ctx.params.get(name) is not None]
    if ctx.params.get("hours") is not None:
        options.append(("--hours", {"minutes"}))
    options.append(("--set", set(parse_overrides(overrides))))
    if ctx.params.get("config_file") is not None:
        options.append(("--config", set(load_config_file(ctx.params["config_file"]))))
    if given("budget"):
        budget = Budget(ctx.params["budget"])
        options.append(("--budget", set(BUDGETS[budget]) | set(task.budgets.get(budget, {}))))
    return options


def resume_changes(ctx: click.Context, task: Task, overrides: tuple[str, ...],
                   cfg: TrainConfig, saved: TrainConfig) -> dict[str, Any]:
    """The settings the options given with --resume change (``cfg``: the command line's
    settings; ``saved``: the run's). An option equal to the run's own changes nothing and is
    accepted, so the command that started a run resumes it with --resume added; one that
    would change what the run learns is refused, naming both values."""
    allowed = ", ".join(f"{key}=" for key in sorted(RESUME_SETTINGS))
    changes: dict[str, Any] = {}
    seen: set[str] = set()
    for option, keys in _given_settings(ctx, task, overrides):
        for key in sorted(keys - seen):
            seen.add(key)
            new, old = getattr(cfg, key), getattr(saved, key)
            if new == old or (key == "iterations" and cfg.minutes is not None):
                continue  # a time budget's count is the run's plan (a new one is refused)
            if key not in RESUME_SETTINGS:
                raise UtomError(f"{option}: a resumed run keeps the settings it was trained "
                                f"with ({key} {old!r}; this command gives {new!r}); with "
                                f"--resume only --iterations and --set {allowed} may change")
            changes[key] = new
    return changes
