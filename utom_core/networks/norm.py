"""Instance normalisation whose statistics can be frozen, so tiles normalise like the whole image.

Per-tile instance norm gives every tile its own brightness and leaves seams. Recording the
statistics once on the whole image (or on crops sampled across it, pooled together) and reusing
them for every tile makes tiled inference match whole-image inference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm(nn.Module):
    """``nn.InstanceNorm2d`` that uses ``frozen`` (mean, var) when they are set.

    ``affine`` adds a learnt per-channel scale and shift after normalising: what a batch-norm
    layer of the authors' code computes at test time on one image (``utom import-generator``).
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dtype != torch.bfloat16:
            x = x.float()  # training under bf16 autocast: outputs and gradients stay fp32
        # predicting, a bf16 convolution's output stays bf16 (statistics are accumulated in
        # fp32 either way): converting it to fp32 and back for the next convolution took a
        # third of a bf16 forward (docs/results/prediction.md)
        weight: torch.Tensor | None = self.weight
        bias: torch.Tensor | None = self.bias
        if weight is not None and bias is not None:
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        if self.frozen is None:  # the fused kernel: ~4x faster than var_mean + arithmetic
            return F.instance_norm(x, weight=weight, bias=bias, eps=self.eps)
        mean, var = self.frozen
        x = (x - mean.to(x.dtype)) * torch.rsqrt(var + self.eps).to(x.dtype)
        if weight is None or bias is None:
            return x
        return x * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


@contextmanager
def frozen_norm_statistics(model: nn.Module, crops: torch.Tensor, bf16: bool = False
                           ) -> Iterator[None]:
    """Freeze every InstanceNorm at the statistics of ``crops`` taken together as one image.

    Each layer pools over all crops and pixels and normalises with the pooled values at once,
    so deeper layers see inputs normalised as the whole image would be (one forward pass).
    ``crops`` is the whole image when it fits, else crops sampled across it. ``bf16``: that
    pass under bf16 autocast, as the tiles will run (the caller decides, where the device
    computes bf16 natively: ``device.native_bf16``), so its statistics are those of the
    activations the tiles normalise, at the tiles' cost (pooled in fp32 either way, a few
    channels at a time: no fp32 copy of a whole bf16 activation).
    """
    norms = [m for m in model.modules() if isinstance(m, InstanceNorm)]

    def record(norm: InstanceNorm, args: tuple[torch.Tensor, ...]) -> None:
        pooled = [torch.var_mean(part.float(), dim=(0, 2, 3), keepdim=True, correction=0)
                  for part in args[0].split(8, dim=1)]
        norm.frozen = (torch.cat([m for _, m in pooled], 1), torch.cat([v for v, _ in pooled], 1))

    hooks = [norm.register_forward_pre_hook(record) for norm in norms]
    try:
        try:
            bf16_pass = (torch.autocast(crops.device.type, torch.bfloat16) if bf16
                         else nullcontext())  # off: leave a caller's autocast be
            with torch.no_grad(), bf16_pass:
                model(crops)
        finally:
            for hook in hooks:
                hook.remove()
        yield
    finally:
        for norm in norms:
            norm.frozen = None
