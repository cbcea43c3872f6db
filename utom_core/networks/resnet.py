"""The paper's ResNet generator (Johnson et al. layout, as in CycleGAN and UTOM)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from utom_core.networks.base import (
    Blur,
    Generator,
    SmoothUpConv,
    anchor_radius,
    init_weights,
    low_pass,
    notch_of,
    notch_radius,
    tanh_output,
)
from utom_core.networks.norm import InstanceNorm

Upsampling = Literal["transpose", "resize", "smooth"]


def upsample_block(in_ch: int, out_ch: int, mode: Upsampling,
                   affine: bool = False) -> list[nn.Module]:
    """2x upsampling: the paper's transposed conv; resize-then-conv by nearest neighbour
    (``resize``); or ``smooth``: a bilinear resize blurred by [1 2 1]², the conv, and the
    ReLU's output blurred again. Without the blurs a stride-2 generator prints a 2- and 4-px
    grid, which its ReLUs make of what a resize leaves near the new Nyquist frequency
    (docs/results/upsampling.md)."""
    if mode == "transpose":
        return [nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
                InstanceNorm(out_ch, affine=affine), nn.ReLU(inplace=True)]
    after = [InstanceNorm(out_ch, affine=affine), nn.ReLU(inplace=True)]
    if mode == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                nn.Conv2d(in_ch, out_ch, 3), *after]
    # the identities hold the places of the resize, its blur and the pad that SmoothUpConv
    # took in, so the layers keep the numbers under which saved models name their weights
    return [nn.Identity(), nn.Identity(), nn.Identity(), SmoothUpConv(in_ch, out_ch), *after,
            Blur(out_ch)]


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convs with instance norm and a skip connection."""

    def __init__(self, channels: int, affine: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            InstanceNorm(channels, affine=affine),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            InstanceNorm(channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the residual stream is summed in fp32 while the norms hand a bf16 prediction on in
        # bf16 (``InstanceNorm``): bf16 sums cost a trained model 0.4 dB more against fp32
        return x.float() + self.body(x)


class ResnetGenerator(Generator):
    """7x7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, tanh."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        n_blocks: int = 9,
        upsampling: Upsampling = "transpose",
        residual: bool = False,
        norm_affine: bool = False,
        anchor_sigma: float = 0.0,
        lattice_notch: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.ngf = in_channels, out_channels, ngf
        self.n_blocks, self.upsampling, self.residual = n_blocks, upsampling, residual
        self.norm_affine = norm_affine
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            InstanceNorm(ngf, affine=norm_affine),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                InstanceNorm(ngf * mult * 2, affine=norm_affine),
                nn.ReLU(inplace=True),
            ]
        layers += [ResidualBlock(ngf * 4, norm_affine) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += upsample_block(ngf * mult, ngf * mult // 2, upsampling, norm_affine)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        self.model = nn.Sequential(*layers)
        self.anchor_sigma, self.anchor = anchor_sigma, low_pass(anchor_sigma)
        self.lattice_notch, self.notch = lattice_notch, notch_of(lattice_notch)
        init_weights(self)

    @property
    def receptive_radius(self) -> int:
        # 7x7 (3) + downsamplings (1 + 2) + 2 convs per block at stride 4 + upsamplings + 7x7 (3)
        up = {"transpose": 4 + 2, "resize": 8 + 4, "smooth": 12 + 6 + 2 * (2 + 1)}[self.upsampling]
        return (3 + 1 + 2 + 8 * self.n_blocks + up + 3 + anchor_radius(self.anchor)
                + notch_radius(self.notch))

    @property
    def size_multiple(self) -> int:
        return 4

    def encoder_taps(self) -> list[int]:
        """Layers whose outputs PatchNCE compares (CUT's choice on this layout): the padded
        input, both downsampling convs, the first and the fifth residual block (or the last,
        with fewer)."""
        blocks = 10  # head (4 layers) and two downsamplings (3 each)
        taps = [0, 4, 7] + ([blocks, blocks + min(4, self.n_blocks - 1)] if self.n_blocks else [])
        return sorted(set(taps))

    def encoder_channels(self) -> list[int]:
        """Channels of each tap's output."""
        widths = {0: self.in_channels, 4: 2 * self.ngf, 7: 4 * self.ngf}
        return [widths.get(tap, 4 * self.ngf) for tap in self.encoder_taps()]

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The taps' outputs for ``x``, running the encoder no further than the last tap."""
        taps, found = self.encoder_taps(), []
        for index, layer in enumerate(list(self.model)[:taps[-1] + 1]):
            x = layer(x)
            if index in taps:
                found.append(x)
        return found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh_output(self.model(x), x, self.residual, self.anchor, self.notch)
