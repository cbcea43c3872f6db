"""Schedules of a run: the saliency weight ρ and the learning rate, by images and iterations."""

from __future__ import annotations

import math


def rho(images_seen: int, rho0: float, images_per_epoch: int) -> float:
    """Saliency weight after ``images_seen`` images: exponential decay per 'epoch'."""
    return rho0 * math.exp(-images_seen / images_per_epoch)


def lr_factor(iteration: int, total: int, decay_start: float,
              resumed: tuple[int, float] | None = None) -> float:
    """Constant learning rate, then a linear decay that reaches zero after the last iteration.

    ``resumed`` (k, f): the total was changed at iteration k while the rate was decaying; from
    k on it falls linearly from f, the factor it had reached, to zero after the new last
    iteration, so extending a run never raises its rate (see ``resumed_decay``).
    """
    if resumed is not None:
        at, factor = resumed
        return factor * (total - iteration) / (total - at + 1)
    start = int(decay_start * total)
    if iteration < start:
        return 1.0
    return 1.0 - (iteration - start + 1) / (total - start + 1)


def resumed_decay(iteration: int, planned: int, decay_start: float,
                  resumed: tuple[int, float] | None) -> tuple[int, float] | None:
    """The ``resumed`` anchor of a run whose total is changed from ``planned`` at
    ``iteration``: None while the rate is still full (the decay is planned anew over the new
    total, as if it had been planned so from the start), else where the decay stood."""
    factor = lr_factor(iteration - 1, planned, decay_start, resumed)
    if resumed is None and factor == 1.0:
        return None
    return iteration, factor
