"""The Generator interface that training, tiled prediction and export rely on."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from utom_core.config import TrainConfig


class Generator(nn.Module, ABC):
    """A fully convolutional image-to-image network from ``in_channels`` to ``out_channels``.

    Tiled prediction needs two facts about it: how far an output pixel's receptive field
    reaches (so tile overlaps can cover it) and which multiple the input size must be.
    """

    in_channels: int
    out_channels: int

    @property
    @abstractmethod
    def receptive_radius(self) -> int:
        """Pixels on each side of an output pixel that can influence it (norm layers frozen)."""

    @property
    @abstractmethod
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


GeneratorBuilder = Callable[["TrainConfig", int, int], Generator]
"""Builds the generator a config names for (in, out) channels: ``Registry.build_generator``.
Lower layers take one as an argument, so only the commands look names up in the registry."""


RESIDUAL_LIMIT = 0.999
"""Inputs are clamped to ±this before atanh, which is infinite at ±1."""


def gaussian_taps(sigma: float, step: int = 1) -> torch.Tensor:
    """A normalised Gaussian of σ ``sigma`` sampled every ``step`` pixels out to 3σ."""
    reach = math.ceil(3 * sigma / step)
    taps = torch.arange(-reach, reach + 1, dtype=torch.float32) * step
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def separable(x: torch.Tensor, taps: torch.Tensor, step: int, trim: int) -> torch.Tensor:
    """``x`` filtered by ``taps`` spaced ``step`` pixels apart along both axes, per channel,
    ``trim`` pixels taken off each side of the result (where ``x`` was extended)."""
    channels, dtype, reach = x.shape[1], x.dtype, (taps.numel() // 2) * step
    rows = taps.to(dtype).view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = taps.to(dtype).view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cut = trim - reach
    x = x[..., :, cut:x.shape[-1] - cut]
    x = F.conv2d(x, rows, groups=channels, dilation=(step, 1))
    return F.conv2d(x[..., cut:x.shape[-2] - cut, :], cols, groups=channels, dilation=(1, step))


class LowPass(nn.Module):
    """A fixed separable Gaussian blur of σ ``sigma`` pixels per channel, truncated at 3σ,
    borders replicated (any tile size). No parameters, no persistent buffers: a generator's
    state dict is the same with or without one."""

    kernel: torch.Tensor  # a buffer (nn.Module's attribute access is typed Tensor | Module)

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.radius = math.ceil(3 * sigma)
        self.register_buffer("kernel", gaussian_taps(sigma), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one memory layout whatever the caller's (a zoo runner's tensors may be strided
        # otherwise), so the sums run in one order and every runtime gets the same floats
        x = x.contiguous()
        return separable(replicate_edges(x, self.radius), self.kernel, 1, self.radius)


class Blur(nn.Module):
    """A fixed [1 2 1]² / 16 blur per channel, borders reflected; no parameters or state."""

    kernel: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(padded, self.kernel.to(padded.dtype), groups=x.shape[1])


SMOOTH_TAPS = (1.0, 5.0, 10.0, 10.0, 5.0, 1.0)
"""Per axis, sixteenths: the bilinear 2x resize ([1 3 3 1] / 4 on the zero-filled grid) and the
[1 2 1] / 4 blur after it, as one filter."""


def replicate_edges(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` with ``width`` copies of its edge rows, then columns, around it: F.pad's replicate
    mode built from views and cats, whose backward torch.compile gets right (inductor's
    replication_pad2d_backward fails its own stride check on the CPU)."""
    lead = x.shape[:-2]
    top, bottom = (x[..., edge, :].expand(*lead, width, x.shape[-1])
                   for edge in (slice(0, 1), slice(-1, None)))
    x = torch.cat([top, x, bottom], dim=-2)
    left, right = (x[..., edge].expand(*lead, x.shape[-2], width)
                   for edge in (slice(0, 1), slice(-1, None)))
    return torch.cat([left, x, right], dim=-1)


class SmoothUpConv(nn.Conv2d):
    """``smooth`` upsampling's bilinear 2x resize, [1 2 1]² blur and 3x3 conv, computed in the
    other order: the conv as a transposed convolution at the low resolution, then the fixed
    resize-and-blur filter on its output channels. Linear filters commute, so it is the same
    function at a quarter of the multiply-adds (docs/results/training-speed.md). At the
    borders the resize sees the input extended by replicating its edge, which leaves the conv
    nothing to pad. Its weight and bias are the 3x3 conv's, named as saved models name them."""

    rows: torch.Tensor
    cols: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3)
        line = torch.tensor(SMOOTH_TAPS) / 16
        self.register_buffer("rows", line.view(1, 1, 6, 1).expand(out_channels, 1, 6, 1).clone(),
                             persistent=False)
        self.register_buffer("cols", line.view(1, 1, 1, 6).expand(out_channels, 1, 1, 6).clone(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        spread = F.conv_transpose2d(replicate_edges(x, 2),
                                    self.weight.flip(-1, -2).transpose(0, 1), stride=2)
        # the rows and columns that every tap of the conv and of the filter reach
        spread = spread[..., 2:2 * height + 7, 2:2 * width + 7]
        channels, dtype = spread.shape[1], spread.dtype
        spread = F.conv2d(spread, self.rows.to(dtype), groups=channels)
        spread = F.conv2d(spread, self.cols.to(dtype), groups=channels)
        # added here, not by the depthwise conv, whose bias gradient is a slow path (the stage
        # took 39 ms against 30, docs/results/training-speed.md); the bias is never None here,
        # but nn.Conv2d types it optional
        return spread if self.bias is None else spread + self.bias.to(dtype).view(-1, 1, 1)


class LatticeNotch(nn.Module):
    """Takes a generator's stride lattice out of its output: the frequencies of the ``period``
    (4) px lattice (the 2- and 4-px periods along the axes and diagonals), notched with a
    Gaussian bandwidth of σ ``sigma`` px. Per pixel it subtracts the local mean of the
    pixels in the same lattice phase and adds back the local mean of all: a pattern that
    repeats on the lattice goes, content whose frequencies lie off it stays (a 5-px period
    keeps 83 % of its amplitude at σ 6). Learned stride-2 upsamplings print such a pattern
    that no discriminator or shift term removes whole (docs/results/upsampling.md); here the
    generator cannot output it. Only the 4-px lattice of the two finest stride-2 levels: a
    deeper U-Net's coarser lattices stay. Computed in fp32 under any autocast, the result
    clamped to the output range [-1, 1]. No parameters or persistent buffers."""

    phase: torch.Tensor  # buffers (nn.Module's attribute access is typed Tensor | Module)
    local: torch.Tensor

    def __init__(self, sigma: float, period: int = 4) -> None:
        super().__init__()
        self.period = period
        self.register_buffer("phase", gaussian_taps(sigma, period), persistent=False)
        self.register_buffer("local", gaussian_taps(sigma), persistent=False)
        self.radius = max(self.phase.numel() // 2 * period, self.local.numel() // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float().contiguous()
            extended = replicate_edges(x, self.radius)
            same_phase = separable(extended, self.phase, self.period, self.radius)
            local = separable(extended, self.local, 1, self.radius)
            return torch.clamp(x - same_phase + local, -1.0, 1.0)


def low_pass(sigma: float) -> LowPass | None:
    """The anchor of a generator with ``anchor_sigma`` σ (None where it is 0: off)."""
    return LowPass(sigma) if sigma > 0 else None


def anchor_radius(anchor: LowPass | None) -> int:
    """Pixels the anchor adds to a generator's receptive radius."""
    return anchor.radius if anchor is not None else 0


def notch_of(sigma: float) -> LatticeNotch | None:
    """The output notch of a generator with ``lattice_notch`` σ (None where it is 0: off)."""
    return LatticeNotch(sigma) if sigma > 0 else None


def notch_radius(notch: LatticeNotch | None) -> int:
    """Pixels the notch adds to a generator's receptive radius."""
    return notch.radius if notch is not None else 0


def anchored(output: torch.Tensor, x: torch.Tensor, anchor: LowPass | None) -> torch.Tensor:
    """``output`` with its low frequencies replaced by the input's: output + lowpass(x − output).

    For restorations in the input's units whose degradation keeps the coarse image (noise,
    blur, axial blur), the generator may then change only the detail the degradation
    destroyed: it cannot dim, drop or relocate content at scales above σ, which is what made
    short GAN runs score below doing nothing on sparse structures."""
    if anchor is None:
        return output
    return torch.clamp(output + anchor(x - output), -1.0, 1.0)


def tanh_output(pre: torch.Tensor, x: torch.Tensor, residual: bool,
                anchor: LowPass | None = None, notch: LatticeNotch | None = None) -> torch.Tensor:
    """The generator's tanh output; ``residual`` adds atanh(input) before it, ``anchor`` then
    gives it the input's coarse image (``anchored``), ``notch`` takes the stride lattice out
    of the result (``LatticeNotch``).

    A residual generator learns a correction to its input (it is the identity at
    initialisation), which suits restoration tasks whose output lives on the input's scale.
    """
    pre = pre.float()  # a bf16 autocast's last convolution: the output is computed in fp32
    if residual:
        pre = pre + torch.atanh(x.clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT))
    out = anchored(torch.tanh(pre), x, anchor)
    return out if notch is None else notch(out)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The CycleGAN initialisation: conv weights ~ N(0, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
