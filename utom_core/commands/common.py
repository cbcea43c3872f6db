"""Options and config assembly shared by ``train``, ``run`` and ``bench``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from utom_core.config import (
    Budget,
    Method,
    TrainConfig,
    build_config,
    load_config_file,
    parse_overrides,
)
from utom_core.task import Task

PATHS = click.Path(path_type=Path)


def threshold_value(text: str | None) -> float | str | None:
    """--threshold-a/-b: a number in raw units, or "auto"."""
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a number nor 'auto'") from None


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every training entry point accepts."""
    options = [
        click.option("--budget", type=click.Choice([b.value for b in Budget]), default="demo",
                     show_default=True, help="Preset of network size, tile size and iterations."),
        click.option("--method", type=click.Choice([m.value for m in Method]), default=None,
                     help="Objective (default: utom)."),
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
    """Budget preset < task defaults < config file < --set < explicit options."""
    explicit = {key: value for key, value in dict(
        method=method, iterations=iterations, seed=seed,
        threshold_a=threshold_a, threshold_b=threshold_b,
    ).items() if value is not None}
    layers = [*task.config_layers(Budget(budget))]
    if config_file is not None:
        layers.append(load_config_file(config_file))
    layers += [parse_overrides(overrides), explicit]
    source = f"{config_file}" if config_file else "settings"
    return build_config(*layers, source=source)
