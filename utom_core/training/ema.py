"""Exponential moving average of generator weights: what prediction uses by default."""

from __future__ import annotations

import torch


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float,
               iteration: int) -> None:
    """Move ``ema``'s weights towards ``model``'s; the decay warms up over the first
    iterations so the average does not keep the random initialisation."""
    if decay == 0:
        ema.load_state_dict(model.state_dict())
        return
    decay = min(decay, (1 + iteration) / (10 + iteration))
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
