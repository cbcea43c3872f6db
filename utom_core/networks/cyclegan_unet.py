"""The U-Net generator of the CycleGAN code the UTOM authors built on (``unet_128``, ``unet_256``).

4x4 stride-2 convolutions down, 4x4 transposed convolutions up, and a skip connection around
every level. Its modules are laid out as in that code, so the state dicts it writes load as they
are (``utom import-generator``); utom's own ``unet`` is a different, resize-based design.
"""

from __future__ import annotations

import torch
from torch import nn

from utom_core.networks.base import (
    Generator,
    anchor_radius,
    init_weights,
    low_pass,
    notch_of,
    notch_radius,
    tanh_output,
)
from utom_core.networks.norm import InstanceNorm


class SkipLevel(nn.Module):
    """One level: down-convolution, the levels inside it, up-convolution. The level's input is
    concatenated to its output, except at the outermost level, which gives tanh's input."""

    def __init__(self, outer: int, inner: int, inside: SkipLevel | None,
                 in_channels: int | None = None, affine: bool = False) -> None:
        super().__init__()
        self.outermost = in_channels is not None
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1)
        up = nn.ConvTranspose2d(inner if inside is None else 2 * inner, outer, 4, stride=2,
                                padding=1)
        middle: list[nn.Module] = [] if inside is None else [inside]
        if self.outermost:
            layers = [down, *middle, nn.ReLU(), up]
        elif inside is None:  # innermost: no norm on the smallest features
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), up, InstanceNorm(outer, affine=affine)]
        else:
            layers = [nn.LeakyReLU(0.2), down, InstanceNorm(inner, affine=affine), *middle,
                      nn.ReLU(), up, InstanceNorm(outer, affine=affine)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], dim=1)


class CycleganUnetGenerator(Generator):
    """``depth`` nested levels, widths ngf, 2·ngf, 4·ngf, then 8·ngf (depth 7: ``unet_128``,
    8: ``unet_256``); inputs must be multiples of 2^depth."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, depth: int = 8,
                 residual: bool = False, norm_affine: bool = False,
                 anchor_sigma: float = 0.0, lattice_notch: float = 0.0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.ngf, self.depth = (
            in_channels, out_channels, ngf, depth)
        self.residual, self.norm_affine = residual, norm_affine
        widths = [ngf * 2 ** min(level, 3) for level in range(depth)]
        level: SkipLevel | None = None
        for i in reversed(range(1, depth)):
            level = SkipLevel(widths[i - 1], widths[i], level, affine=norm_affine)
        self.model = SkipLevel(out_channels, widths[0], level, in_channels, norm_affine)
        self.anchor_sigma, self.anchor = anchor_sigma, low_pass(anchor_sigma)
        self.lattice_notch, self.notch = lattice_notch, notch_of(lattice_notch)
        init_weights(self)

    @property
    def receptive_radius(self) -> int:
        # each 4x4 stride-2 conv reaches one more cell of its level on either side (2^l - 1
        # pixels over the way down); each transposed conv two cells of the coarser level
        return 3 * (2**self.depth - 1) + anchor_radius(self.anchor) + notch_radius(self.notch)

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh_output(self.model(x), x, self.residual, self.anchor, self.notch)
