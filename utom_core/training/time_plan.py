"""Plan a run by time: ``--minutes`` becomes a count of iterations before the run starts.

The learning-rate and ρ schedules derive from ``iterations``, so the count must be fixed before
the first step: a short trial on the trainer just built times its step and the periodic costs
(checkpoint, preview, validation), the trainer is put back exactly as it was (networks,
optimisers, EMA, pools, RNGs and tile streams: what a checkpoint holds), and the plan is the
count of iterations that fills the time. The run then records it in its settings, so a resumed
run trains up to the same count, and trains as ``--iterations`` of that count would.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.training import distributed
from utom_core.training.trainer import Trainer

TRIAL_SECONDS = 10.0
"""At most this long of timed steps (after one warm-up step) ..."""
TRIAL_FRACTION = 0.05
"""... and at most this fraction of the time asked."""
TRIAL_STEPS = 3
"""Timed steps at least, however long they take."""
MAX_ITERATIONS = 10_000_000
"""The most a run may plan (TrainConfig's bound)."""


@dataclass(frozen=True)
class Costs:
    """Seconds of one step and of each periodic write, as the trial measured them."""

    step: float
    checkpoint: float = 0.0
    preview: float = 0.0
    validation: float = 0.0


@dataclass(frozen=True)
class Plan:
    iterations: int
    minutes: float
    costs: Costs
    trial_seconds: float
    """The trial's own time, before training (not part of the minutes filled)."""

    def __str__(self) -> str:
        costs = self.costs
        periodic = [f"{name} {seconds:.3g} s" for name, seconds in (
            ("checkpoint", costs.checkpoint), ("preview", costs.preview),
            ("validation", costs.validation)) if seconds]
        return (f"planned {self.iterations} iterations to fill {self.minutes:g} min (step "
                f"{costs.step:.3g} s" + "".join(f", {text}" for text in periodic)
                + f"; trial {self.trial_seconds:.1f} s)")


def planned_iterations(seconds: float, costs: Costs, cfg: TrainConfig) -> int:
    """Iterations whose steps and periodic writes (every checkpoint_every, preview_every,
    val_every; a checkpoint and a preview at the end too) fill ``seconds``; at least one."""
    per_iteration = (costs.step + costs.checkpoint / cfg.checkpoint_every
                     + costs.preview / cfg.preview_every + costs.validation / cfg.val_every)
    left = seconds - costs.checkpoint - costs.preview
    return int(min(MAX_ITERATIONS, max(1, left // max(per_iteration, 1e-9))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(action: Callable[[], Any], device: torch.device) -> float:
    start = time.perf_counter()
    action()
    _sync(device)
    return time.perf_counter() - start


def _checkpoint(trainer: Trainer, folder: Path) -> None:
    """What ``Trainer.save`` writes (without gathering the ranks' parts)."""
    save_torch(trainer.state_dict(), folder / "checkpoint.pt")
    save_torch(trainer.model_state(), folder / "model.pt")


def trial(trainer: Trainer, seconds: float) -> Costs:
    """Time ``trainer``'s step and periodic writes (the writes to a temporary folder), then put
    it back as it was. Every rank runs it (the steps are collective)."""
    device = trainer.device
    before = copy.deepcopy(trainer.state_dict())
    saved_at = trainer.saved_at
    try:
        _timed(trainer.step, device)  # warm-up: allocations, kernels chosen, workers started
        limit, timed, start = min(TRIAL_SECONDS, TRIAL_FRACTION * seconds), 0, time.perf_counter()
        while timed < TRIAL_STEPS or time.perf_counter() - start < limit:
            trainer.step()
            timed += 1
        _sync(device)
        step = (time.perf_counter() - start) / timed
        with tempfile.TemporaryDirectory(prefix="utom-trial-") as folder:
            run_dir, trainer.run_dir = trainer.run_dir, Path(folder)
            try:
                checkpoint = _timed(lambda: _checkpoint(trainer, Path(folder)), device)
                preview = _timed(trainer.preview, device)
            finally:
                trainer.run_dir = run_dir
        validator = trainer.validator
        validation = 0.0 if validator is None else _timed(
            lambda: validator.metrics(trainer.ema_ab), device)
    finally:
        trainer.streams.close()  # prefetched batches are drawn again from the restored position
        trainer.load_state_dict(before)
        trainer.saved_at = saved_at
    return Costs(step, checkpoint, preview, validation)


def plan_by_time(trainer: Trainer, cfg: TrainConfig, minutes: float) -> Plan:
    """Plan ``trainer`` (built from ``cfg``) to fill ``minutes`` of training: its iterations,
    and the ρ decay and validation end derived from them, as if ``cfg`` had given the count;
    rank 0's plan on every rank."""
    start = time.perf_counter()
    costs = trial(trainer, minutes * 60)
    trial_seconds = time.perf_counter() - start
    iterations = distributed.from_rank0(
        lambda: planned_iterations(minutes * 60, costs, trainer.cfg))
    decay = cfg.model_copy(update={"iterations": iterations}).decay_length(trainer.ranks.world)
    trainer.meta = trainer.meta.model_copy(update={"images_per_epoch": decay})
    trainer.cfg = trainer.cfg.model_copy(update={"iterations": iterations,
                                                 "images_per_epoch": decay})
    if trainer.validator is not None:
        trainer.validator.last = iterations
    return Plan(iterations, minutes, costs, trial_seconds)
