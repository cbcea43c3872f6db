"""Generators that keep the input's low frequencies (``anchor_sigma``): what they keep, what
they leave free, and that tiles, checkpoints and the registry treat them like any other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import predict_array, whole_image

from utom_core.config import TrainConfig
from utom_core.domain import Normalisation
from utom_core.errors import UtomError
from utom_core.inference import Norm
from utom_core.networks import ResnetGenerator, UnetGenerator, frozen_norm_statistics
from utom_core.networks.base import LatticeNotch, LowPass, anchored
from utom_core.networks.cyclegan_unet import CycleganUnetGenerator
from utom_core.plugins import get_registry

UNIT = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")


def _spots(size: int = 96) -> torch.Tensor:
    """A dark field with three bright discs of radius 10 and one 1-px line."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.full((1, 1, size, size), -0.9)
    for cy, cx in ((20, 20), (60, 30), (40, 70)):
        image[0, 0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = 0.6
    image[0, 0, 80, 10:90] = 0.8
    return image


def test_a_dimmed_or_emptied_output_gets_the_inputs_coarse_image_back():
    x, coarse = _spots(), LowPass(12.0)
    for wrong in (0.4 * x - 0.5, torch.full_like(x, -0.9)):  # dimmed; content dropped
        before = (coarse(wrong) - coarse(x)).abs().mean()
        after = (coarse(anchored(wrong, x, LowPass(4.0))) - coarse(x)).abs().mean()
        assert after < 0.1 * before


def test_detail_finer_than_sigma_is_left_to_the_generator():
    x = 0.5 * _spots()  # away from ±1: nothing clamped
    sharper = x + 0.1 * torch.randn_like(x)  # a generator's own fine texture
    kept = anchored(sharper, x, LowPass(4.0)) - x
    fine = (sharper - x) - LowPass(4.0)(sharper - x)
    torch.testing.assert_close(kept, fine, atol=1e-5, rtol=0)


def test_lowpass_keeps_flat_images_and_flux():
    flat = torch.full((1, 2, 40, 33), 0.3)
    torch.testing.assert_close(LowPass(3.0)(flat), flat)
    spot = torch.zeros(1, 1, 64, 64)
    spot[0, 0, 32, 32] = 1.0
    assert float(LowPass(3.0)(spot).sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("setting", [{"anchor_sigma": 4.0}, {"lattice_notch": 6.0}])
@pytest.mark.parametrize("make", [
    lambda **kw: ResnetGenerator(1, 1, ngf=8, n_blocks=1, **kw),
    lambda **kw: UnetGenerator(1, 1, ngf=8, depth=2, **kw),
    lambda **kw: CycleganUnetGenerator(1, 1, ngf=8, depth=3, **kw),
])
def test_the_anchor_and_the_notch_add_no_weights_and_widen_the_receptive_radius(make, setting):
    torch.manual_seed(0)
    plain = make()
    torch.manual_seed(0)
    kept = make(**setting)
    assert list(kept.state_dict()) == list(plain.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(kept.state_dict()[key], value)  # same seed, same weights
    widened = 12 if "anchor_sigma" in setting else LatticeNotch(6.0).radius
    assert kept.receptive_radius == plain.receptive_radius + widened


@pytest.mark.parametrize("setting, tile", [
    (dict(residual=True, anchor_sigma=3.0), 96),
    (dict(upsampling="transpose", lattice_notch=6.0), 128),
])
def test_tiles_of_an_anchored_or_notched_generator_equal_whole_image_inference(setting, tile):
    torch.manual_seed(0)
    net = ResnetGenerator(1, 1, ngf=8, n_blocks=1, **setting).eval()
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    with frozen_norm_statistics(net, torch.from_numpy(data[None])):
        out = predict_array(data, net, UNIT, tile=tile,
                            overlap=2 * net.receptive_radius / tile + 0.01, norm=Norm.tile,
                            batch=2)
    np.testing.assert_allclose(out, whole_image(net, data), atol=1e-4)


def test_the_registry_builds_anchored_generators_and_refuses_what_cannot_be():
    registry = get_registry()
    cfg = TrainConfig(ngf=8, n_blocks=1, anchor_sigma=2.0)
    assert registry.build_generator(cfg, 1, 1).anchor_sigma == 2.0
    with pytest.raises(UtomError, match="anchor_sigma need equal channel counts"):
        registry.build_generator(cfg, 1, 3)
