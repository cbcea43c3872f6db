"""``SmoothUpConv`` computes ``smooth`` upsampling's resize, blur and conv (a bilinear 2x resize,
the [1 2 1]² blur, a 3x3 conv) with the conv first, at the low resolution: the same values and
gradients as the three steps in their order on the input extended by replicating its edge, on
odd and tiny sizes; inside the image the same as the conv of the reflect-padded resize; and a
generator keeps the layer numbers its saved weights are named by."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utom_core.networks.base import Blur, SmoothUpConv
from utom_core.networks.resnet import ResnetGenerator


def resized(x: torch.Tensor) -> torch.Tensor:
    """The bilinear 2x resize and its blur, step by step."""
    return Blur(x.shape[1])(F.interpolate(x, scale_factor=2, mode="bilinear"))


@pytest.mark.parametrize("shape", [(1, 5, 2, 2), (2, 3, 7, 9), (1, 8, 33, 20)])
def test_the_conv_first_is_the_resize_then_the_conv(shape):
    torch.manual_seed(0)
    layer = SmoothUpConv(shape[1], 4)
    x = torch.randn(*shape, requires_grad=True)
    fused = layer(x)
    height, width = shape[-2:]
    # the resize of the input extended by two pixels of its edge; the conv's window reaches
    # one pixel past the image, where the resize of the extension is
    extended = resized(F.pad(x, (2, 2, 2, 2), mode="replicate"))
    stepwise = F.conv2d(extended[..., 3:2 * height + 5, 3:2 * width + 5], layer.weight,
                        layer.bias)
    assert fused.shape == stepwise.shape == (shape[0], 4, 2 * height, 2 * width)
    torch.testing.assert_close(fused, stepwise, atol=2e-6, rtol=0)
    weights = torch.randn_like(fused)
    inputs = (x, layer.weight, layer.bias)
    for got, want in zip(torch.autograd.grad((fused * weights).sum(), inputs),
                         torch.autograd.grad((stepwise * weights).sum(), inputs), strict=True):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-4)  # sums of many terms
    # inside, where no border reaches, the conv of the reflect-padded resize (the layers
    # before the fusion)
    padded = F.conv2d(F.pad(resized(x), (1, 1, 1, 1), mode="reflect"), layer.weight, layer.bias)
    torch.testing.assert_close(fused[..., 2:-2, 2:-2], padded[..., 2:-2, 2:-2], atol=2e-6,
                               rtol=0)


def test_the_conv_first_runs_in_bf16_under_autocast():
    layer = SmoothUpConv(4, 3)
    x = torch.randn(1, 4, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x), atol=0.05, rtol=0.02)


def test_a_traced_smooth_generator_predicts_other_sizes_as_it_does():
    # the Zoo package holds a trace (export/samples.py): the layer's crops follow the input
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 1, ngf=4, n_blocks=1, upsampling="smooth").eval()
    with torch.no_grad():
        traced = torch.jit.trace(generator, torch.randn(1, 1, 16, 16), check_trace=False)
        other = torch.randn(2, 1, 24, 20)
        torch.testing.assert_close(traced(other), generator(other), atol=1e-6, rtol=0)


def test_a_smooth_generator_names_its_weights_as_before_the_fusion():
    # before, each stage was resize, blur, pad, conv, norm, ReLU, blur: the saved models'
    # decoder convs are layers 15 and 22, and the output conv 27
    names = ResnetGenerator(1, 3, ngf=8, n_blocks=2, upsampling="smooth").state_dict()
    assert [n for n in names if not n.startswith(("model.10.", "model.11."))] == [
        f"model.{layer}.{p}" for layer in (1, 4, 7, 15, 22, 27) for p in ("weight", "bias")]
