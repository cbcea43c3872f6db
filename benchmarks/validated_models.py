"""A copy of the model at every validation of the runs this process trains, for benchmarks
that score each validated model on data the validation does not see (a wrapper of the
validator, not a utom option: a run keeps only its last and its chosen model)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from utom_core.checkpoints import save_torch
from utom_core.networks.base import Generator
from utom_core.training import validation

KEPT = "validated"
"""Folder of the copies in a run directory: ``run/validated/ITERATION.pt``."""


@contextmanager
def keeping_validated() -> Iterator[None]:
    """While open, every validation also saves its model (as ``model_best.pt`` would be)."""
    original = validation.Validator.run

    def run(self: validation.Validator, run_dir: Path, iteration: int, generator: Generator,
            model_state: Callable[[], dict[str, Any]]) -> dict[str, float]:
        metrics = original(self, run_dir, iteration, generator, model_state)
        (run_dir / KEPT).mkdir(exist_ok=True)
        save_torch({**model_state(), "validation": {"iteration": iteration}},
                   run_dir / KEPT / f"{iteration}.pt")
        return metrics

    validation.Validator.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        validation.Validator.run = original  # type: ignore[method-assign]


def validated(run: Path) -> list[tuple[int, Path]]:
    """The copies of a run directory (``run/`` of a ``utom run`` output), by iteration."""
    return sorted((int(path.stem), path) for path in (run / KEPT).glob("*.pt"))
