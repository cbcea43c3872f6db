"""Instance normalisation whose statistics can be frozen, so tiles normalise like the whole image.

Per-tile instance norm gives every tile its own brightness and leaves seams. Recording the
statistics once on the whole image (or a thumbnail of it) and reusing them for every tile
makes tiled inference match whole-image inference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class InstanceNorm(nn.Module):
    """``nn.InstanceNorm2d(affine=False)`` plus optional recorded, frozen statistics."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.recording = False
        self.frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            mean, var = self.frozen
        else:
            var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
            if self.recording:
                self.frozen_candidate = (mean.mean(0, keepdim=True), var.mean(0, keepdim=True))
        return (x - mean) * torch.rsqrt(var + self.eps)


def _norms(model: nn.Module) -> list[InstanceNorm]:
    return [m for m in model.modules() if isinstance(m, InstanceNorm)]


@contextmanager
def frozen_norm_statistics(model: nn.Module, reference: torch.Tensor) -> Iterator[None]:
    """Record every InstanceNorm's statistics on ``reference`` and use them inside the block.

    ``reference`` is the whole image when it fits, otherwise a downscaled thumbnail of it.
    """
    norms = _norms(model)
    for norm in norms:
        norm.recording = True
    try:
        with torch.no_grad():
            model(reference)
        for norm in norms:
            norm.frozen = norm.frozen_candidate
            norm.recording = False
            del norm.frozen_candidate
        yield
    finally:
        for norm in norms:
            norm.recording = False
            norm.frozen = None
