"""How the four networks run in a training step: DDP across ranks, torch.compile,
channels_last, and bf16 autocast on CUDA. The plain modules stay the trainer's own (state
dicts, EMA, previews); only the step goes through these wrappers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from utom_core.config import TrainConfig
from utom_core.errors import UtomError, first_line
from utom_core.training.distributed import data_parallel


@dataclass
class StepNetworks:
    """The networks as one training step calls them."""

    g_ab: nn.Module
    g_ba: nn.Module
    d_a: nn.Module
    """D_A for its own update: its gradients are averaged across ranks."""
    d_b: nn.Module
    judge_a: nn.Module
    """D_A as the generators' loss sees it: frozen then, so nothing of it is synchronised
    (a DDP forward whose backward never reaches D's weights would stall the next one)."""
    judge_b: nn.Module


def step_networks(g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module,
                  cfg: TrainConfig, device: torch.device) -> StepNetworks:
    if cfg.channels_last:
        for net in (g_ab, g_ba, d_a, d_b):
            net.to(memory_format=torch.channels_last)

    def compiled(module: nn.Module) -> nn.Module:
        return torch.compile(module) if cfg.compile else module

    def trained(module: nn.Module) -> nn.Module:
        return compiled(data_parallel(module, device))

    return StepNetworks(trained(g_ab), trained(g_ba), trained(d_a), trained(d_b),
                        compiled(d_a), compiled(d_b))


def step_input(batch: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """A batch of tiles in the memory format the networks run in."""
    return batch.contiguous(memory_format=torch.channels_last) if cfg.channels_last else batch


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; never on a CPU."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_tile(cfg: TrainConfig, g_ab: nn.Module, d_b: nn.Module, channels: int,
               device: torch.device) -> None:
    """Refuse a tile size the networks cannot process, before anything is written."""
    multiple = g_ab.size_multiple
    if cfg.tile % multiple:
        raise UtomError(f"tile {cfg.tile}: the {cfg.generator} generator needs a multiple "
                        f"of {multiple} pixels")
    x = torch.zeros(1, channels, cfg.tile, cfg.tile, device=device)
    try:  # one dry forward pass through G and D; the RNG is left as it was
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            d_b(g_ab(x))
    except (RuntimeError, ValueError) as err:
        if type(err).__name__ == "OutOfMemoryError":
            raise
        raise UtomError(f"tile {cfg.tile}: too small for these networks (generator "
                        f"{cfg.generator}, d_layers {cfg.d_layers}): {first_line(err, 160)}; "
                        "use a larger tile or shallower networks") from None
