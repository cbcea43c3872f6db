"""Where InstanceNorm computes in which precision under bf16 autocast: training keeps norm
outputs (and so gradients) in fp32; prediction hands a bf16 convolution's output on in bf16,
while the ResNet's residual stream stays fp32 (docs/results/prediction.md)."""

from __future__ import annotations

import pytest
import torch

from utom_core.networks.norm import InstanceNorm, frozen_norm_statistics
from utom_core.networks.resnet import ResidualBlock, ResnetGenerator


def bf16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16)


@pytest.mark.parametrize("affine", [False, True])
def test_training_norms_fp32_and_predicting_norms_stay_bf16(affine):
    norm = InstanceNorm(4, affine=affine)
    x = bf16(torch.randn(1, 4, 16, 16) * 3 + 2)
    assert norm(x).dtype == torch.float32  # grad enabled: the training path
    with torch.no_grad():
        out = norm(x)
    assert out.dtype == torch.bfloat16
    reference = norm(x.float()).detach()
    assert (out.float() - reference).abs().max() < 0.05  # bf16 rounding of a unit-scale output
    with torch.no_grad(), frozen_norm_statistics(norm, x.float()):
        frozen = norm(x)
    assert frozen.dtype == torch.bfloat16
    assert (frozen.float() - reference).abs().max() < 0.05


def test_the_residual_stream_stays_fp32_when_predicting_in_bf16():
    block = ResidualBlock(8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(bf16(torch.randn(1, 8, 12, 12)))
    assert out.dtype == torch.float32


def test_bf16_prediction_of_a_generator_stays_close_to_fp32():
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 1, ngf=8, n_blocks=2, upsampling="smooth").eval()
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        fp32 = generator(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = generator(x)
    assert half.dtype == torch.float32  # tanh output in fp32
    assert 0 < (half - fp32).abs().max() < 0.05  # bf16 ran, within 2.5 % of the [-1, 1] range
