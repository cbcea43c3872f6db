"""Each view's frozen InstanceNorm statistics, for the tiles of one plane.

Tiled prediction freezes InstanceNorm statistics (``planes``); under ``--views`` they are
recorded once per view, from the view of the same sample. They are not the same for every
view: after a stride-2 layer a flipped image is sampled at the other phase, and deeper
statistics move by a few per cent — enough to leave seams between tiles had one view's
statistics been shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from utom_core.inference.views import View
from utom_core.networks.norm import InstanceNorm, frozen_norm_statistics

Statistics = list[tuple[torch.Tensor, torch.Tensor]]
"""The frozen (mean, var) of every InstanceNorm of a generator, in module order."""


def instance_norms(model: nn.Module) -> list[InstanceNorm]:
    return [m for m in model.modules() if isinstance(m, InstanceNorm)]


@contextmanager
def statistics_per_view(model: nn.Module, reference: torch.Tensor, views: tuple[View, ...],
                        bf16: bool = False) -> Iterator[list[Statistics]]:
    """Each view's frozen statistics of ``reference`` (the sample a plane's tiles share),
    recorded under the tiles' bf16 autocast where they run under it, for
    ``use_statistics``; every norm is unfrozen again on exit."""
    norms, recorded = instance_norms(model), []
    try:
        for view in views:
            with frozen_norm_statistics(model, view.apply(reference), bf16):
                recorded.append([n.frozen for n in norms if n.frozen is not None])  # all are
        yield recorded
    finally:
        for norm in norms:
            norm.frozen = None


def use_statistics(norms: list[InstanceNorm], statistics: Statistics) -> None:
    for norm, frozen in zip(norms, statistics, strict=True):
        norm.frozen = frozen
