"""A U-Net generator (the authors' code offers one as an alternative to the ResNet)."""

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
from utom_core.networks.resnet import Upsampling, upsample_block


def double_conv(in_ch: int, out_ch: int, affine: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_ch, out_ch, 3),
        InstanceNorm(out_ch, affine=affine),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ReflectionPad2d(1),
        nn.Conv2d(out_ch, out_ch, 3),
        InstanceNorm(out_ch, affine=affine),
        nn.LeakyReLU(0.2, inplace=True),
    )


class UnetGenerator(Generator):
    """Encoder-decoder with skip connections; ``depth`` stride-2 levels, widths doubling."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        depth: int = 4,
        upsampling: Upsampling = "smooth",
        residual: bool = False,
        norm_affine: bool = False,
        anchor_sigma: float = 0.0,
        lattice_notch: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.ngf, self.upsampling, self.residual = ngf, upsampling, residual
        self.norm_affine = norm_affine
        widths = [ngf * 2 ** min(level, 3) for level in range(depth + 1)]
        self.encoders = nn.ModuleList([double_conv(in_channels, widths[0], norm_affine)])
        self.encoders.extend(double_conv(widths[i], widths[i + 1], norm_affine)
                             for i in range(depth))
        self.pool = nn.AvgPool2d(2)
        self.ups = nn.ModuleList(
            nn.Sequential(*upsample_block(widths[i + 1], widths[i], upsampling, norm_affine))
            for i in range(depth)
        )
        self.decoders = nn.ModuleList(double_conv(2 * widths[i], widths[i], norm_affine)
                                      for i in range(depth))
        self.head = nn.Sequential(nn.Conv2d(widths[0], out_channels, 1))
        self.anchor_sigma, self.anchor = anchor_sigma, low_pass(anchor_sigma)
        self.lattice_notch, self.notch = lattice_notch, notch_of(lattice_notch)
        init_weights(self)

    @property
    def receptive_radius(self) -> int:
        # two 3x3 convs per level on the way down and up, pooling and upsampling at each level
        return (sum(5 * 2**level for level in range(self.depth + 1)) + 2 ** (self.depth + 1)
                + anchor_radius(self.anchor) + notch_radius(self.notch))

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, skips = x, []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for level in reversed(range(self.depth)):
            x = self.decoders[level](torch.cat([self.ups[level](x), skips.pop()], dim=1))
        return tanh_output(self.head(x), image, self.residual, self.anchor, self.notch)
