"""How a method's networks run in a training step: DDP across ranks, torch.compile and
channels_last (bf16 autocast: ``device.autocast``). The plain modules stay the trainer's own
(state dicts, EMA, previews); only the step goes through these wrappers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from utom_core.config import TrainConfig
from utom_core.data.images import DomainImages
from utom_core.data.sampling import warn_tile_exceeds
from utom_core.errors import UtomError, first_line
from utom_core.methods.base import Method, StepNetworks, shift_term_on
from utom_core.networks.base import Generator
from utom_core.training.distributed import data_parallel


def step_networks(modules: dict[str, nn.Module], cfg: TrainConfig,
                  device: torch.device) -> StepNetworks:
    """Every module as a training step calls it: DDP-wrapped (and compiled) to be updated,
    compiled only to judge (see ``StepNetworks``)."""
    if cfg.channels_last:
        for net in modules.values():
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks it

    def compiled(module: nn.Module) -> nn.Module:
        # torch.compile is typed as returning a callable; a module gives an OptimizedModule
        return cast(nn.Module, torch.compile(module)) if cfg.compile else module

    return StepNetworks(
        trained={name: compiled(data_parallel(net, device)) for name, net in modules.items()},
        plain={name: compiled(net) for name, net in modules.items()})


def step_input(batch: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """A batch of tiles in the memory format the networks run in."""
    return batch.contiguous(memory_format=torch.channels_last) if cfg.channels_last else batch


def check_tile(cfg: TrainConfig, modules: dict[str, nn.Module], channels: int,
               device: torch.device, method: Method, images: Sequence[DomainImages]) -> None:
    """Refuse a tile size the networks (``g_ab``, and ``d_b`` where the method has it) cannot
    process, before anything is written; where ``method`` computes the shift term, also the
    crop that term predicts. Warn of one larger than every plane of ``images`` (the domains'
    images; none on a resume, whose tile is fixed)."""
    g_ab, d_b = cast(Generator, modules["g_ab"]), modules.get("d_b")
    multiple = g_ab.size_multiple
    for domain in images:
        warn_tile_exceeds(domain, cfg.tile, multiple)
    if cfg.tile % multiple:
        raise UtomError(f"tile {cfg.tile}: the {cfg.generator} generator needs a multiple "
                        f"of {multiple} pixels")
    sides = [cfg.tile]
    if "lambda_shift" not in method.unused_settings(cfg) and shift_term_on(cfg, multiple):
        sides.append(cfg.tile - multiple)  # the crop losses.shift_term predicts
    for side in sides:
        try:  # a dry forward pass through G (and D on the tile); the RNG is left as it was
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                out = g_ab(torch.zeros(1, channels, side, side, device=device))
                if d_b is not None and side == cfg.tile:
                    d_b(out)
        except (RuntimeError, ValueError) as err:
            if type(err).__name__ == "OutOfMemoryError":
                raise
            which = "" if side == cfg.tile else f" (the shift term's {side}-px crop)"
            raise UtomError(f"tile {cfg.tile}{which}: too small for these networks (generator "
                            f"{cfg.generator}, d_layers {cfg.d_layers}): {first_line(err, 160)}; "
                            "use a larger tile or shallower networks") from None
