"""The Generator interface that training, tiled prediction and export rely on."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


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


RESIDUAL_LIMIT = 0.999
"""Inputs are clamped to ±this before atanh, which is infinite at ±1."""


def tanh_output(pre: torch.Tensor, x: torch.Tensor, residual: bool) -> torch.Tensor:
    """The generator's tanh output; ``residual`` adds atanh(input) before it.

    A residual generator learns a correction to its input (it is the identity at
    initialisation), which suits restoration tasks whose output lives on the input's scale.
    """
    if residual:
        pre = pre + torch.atanh(x.clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT))
    return torch.tanh(pre)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The CycleGAN initialisation: conv weights ~ N(0, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
