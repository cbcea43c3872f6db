"""The generators of the CycleGAN code the UTOM authors built on, restated for the tests from
the published architecture description (Johnson et al.'s ResNet generator and the pix2pix
U-Net as CycleGAN defines them), not from their source: what their state dicts look like.

ResNet: reflection pad 3, 7x7 conv to ngf, norm, ReLU; two stride-2 3x3 convs doubling the
width (norm, ReLU); n residual blocks (reflection pad 1, 3x3 conv, norm, ReLU, [dropout],
reflection pad 1, 3x3 conv, norm; plus the input); two stride-2 transposed 3x3 convs halving
the width (padding 1, output padding 1; norm, ReLU); reflection pad 3, 7x7 conv, tanh.
U-Net: levels nested from the outside in, each a 4x4 stride-2 conv down and a 4x4 stride-2
transposed conv up, its input concatenated to its output; widths ngf, 2ngf, 4ngf, then 8ngf.
Convolutions have biases only with instance norm (batch norm has its own shift), except the
last one. Norms: InstanceNorm2d without affine parameters, or BatchNorm2d.
"""

from __future__ import annotations

import torch
from torch import nn


def norm(kind: str, channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels) if kind == "instance" else nn.BatchNorm2d(channels)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, kind: str, dropout: bool) -> None:
        super().__init__()
        bias = kind == "instance"
        half = [nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm(kind, width)]
        between = [nn.ReLU(True)] + ([nn.Dropout(0.5)] if dropout else [])
        other = [nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm(kind, width)]
        self.conv_block = nn.Sequential(*half, *between, *other)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ClassicResnet(nn.Module):
    def __init__(self, cin: int, cout: int, ngf: int, blocks: int, kind: str = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        bias = kind == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=bias),
                                   norm(kind, ngf), nn.ReLU(True)]
        width = ngf
        for _ in range(2):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                       norm(kind, width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResidualBlock(width, kind, dropout) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       norm(kind, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, cout, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Level(nn.Module):
    """One U-Net level around ``inside`` (None: the innermost)."""

    def __init__(self, outer: int, inner: int, kind: str, inside: nn.Module | None = None,
                 cin: int | None = None, dropout: bool = False) -> None:
        super().__init__()
        bias = kind == "instance"
        self.outermost = cin is not None
        down = nn.Conv2d(cin if cin is not None else outer, inner, 4, 2, 1, bias=bias)
        if self.outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1)
            layers = [down, inside, nn.ReLU(True), up, nn.Tanh()]
        elif inside is None:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm(kind, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, norm(kind, inner), inside, nn.ReLU(True),
                      up, norm(kind, outer)] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class ClassicUnet(nn.Module):
    def __init__(self, cin: int, cout: int, ngf: int, downs: int, kind: str = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        level = Level(ngf * 8, ngf * 8, kind)
        for _ in range(downs - 5):
            level = Level(ngf * 8, ngf * 8, kind, level, dropout=dropout)
        for outer in (4, 2, 1):
            level = Level(ngf * outer, ngf * outer * 2, kind, level)
        self.model = Level(cout, ngf, kind, level, cin=cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def randomised(net: nn.Module, seed: int) -> nn.Module:
    """Random weights, and batch norms with random scales, shifts and running statistics, so
    every parameter a mapping could misplace changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in net.state_dict().items():
            if value.is_floating_point():
                noise = torch.randn(value.shape, generator=generator) * 0.2
                value.copy_(noise.abs() + 0.5 if name.endswith(("running_var", ".weight"))
                            and value.ndim == 1 else noise)
    return net
