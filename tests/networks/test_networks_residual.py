"""Residual generators: a learned correction to the input, identity when the correction is 0."""

from __future__ import annotations

import pytest
import torch

from utom_core.config import TrainConfig
from utom_core.errors import UtomError
from utom_core.networks import ResnetGenerator, UnetGenerator
from utom_core.plugins import get_registry


def _zero_last_conv(net: torch.nn.Module) -> None:
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


@pytest.mark.parametrize("net", [ResnetGenerator(1, 1, ngf=8, n_blocks=1, residual=True),
                                 UnetGenerator(1, 1, ngf=8, depth=2, residual=True)])
def test_a_residual_generator_with_zero_correction_is_the_identity(net):
    _zero_last_conv(net)
    x = torch.rand(1, 1, 32, 32) * 1.8 - 0.9
    torch.testing.assert_close(net(x), x, atol=1e-5, rtol=0)


def test_the_residual_path_passes_gradients_to_the_input():
    net = ResnetGenerator(1, 1, ngf=8, n_blocks=1, residual=True)
    x = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_()
    net(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 0.1


def test_the_paper_generator_is_not_residual():
    net = ResnetGenerator(1, 1, ngf=8, n_blocks=1)
    _zero_last_conv(net)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    assert net(x).abs().max() == 0  # tanh(0): no path from input to output but the network


def test_residual_needs_equal_channel_counts():
    with pytest.raises(UtomError, match="residual generators need equal channel counts"):
        get_registry().build_generator(TrainConfig(ngf=8, n_blocks=1, residual=True), 1, 3)
