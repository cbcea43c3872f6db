"""``SmoothResize`` computes what ``smooth`` upsampling computed in two steps (a bilinear 2x
resize, then the reflect-padded [1 2 1]² blur), values and gradients, on odd and tiny sizes,
and a generator keeps the layer numbers its saved weights are named by."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utom_core.networks.base import Blur, SmoothResize
from utom_core.networks.resnet import ResnetGenerator


@pytest.mark.parametrize("shape", [(1, 5, 2, 2), (2, 3, 7, 9), (1, 8, 33, 20)])
def test_smooth_resize_is_the_resize_then_the_blur(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    fused = SmoothResize(shape[1])(x)
    two_step = Blur(shape[1])(F.interpolate(x, scale_factor=2, mode="bilinear"))
    assert fused.shape == two_step.shape
    torch.testing.assert_close(fused, two_step, atol=1e-6, rtol=0)
    weights = torch.randn_like(fused)
    grad_fused, = torch.autograd.grad((fused * weights).sum(), x)
    grad_two_step, = torch.autograd.grad((two_step * weights).sum(), x)
    torch.testing.assert_close(grad_fused, grad_two_step, atol=1e-5, rtol=0)


def test_smooth_resize_computes_in_fp32_under_bf16_autocast():
    x = torch.randn(1, 4, 6, 6).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert SmoothResize(4)(x).dtype == torch.float32


def test_a_smooth_generator_names_its_weights_as_before_the_fusion():
    # before, each stage was resize, blur, pad, conv, norm, ReLU, blur: the saved models'
    # decoder convs are layers 15 and 22, and the output conv 27
    names = ResnetGenerator(1, 3, ngf=8, n_blocks=2, upsampling="smooth").state_dict()
    assert [n for n in names if not n.startswith(("model.10.", "model.11."))] == [
        f"model.{layer}.{p}" for layer in (1, 4, 7, 15, 22, 27) for p in ("weight", "bias")]
