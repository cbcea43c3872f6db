"""``lattice_notch``: the generator's output loses what repeats on the 4-px stride lattice and
keeps the rest; a transposed-conv generator's checkerboard goes; the registry builds it for
stain-he (its weights, radius and tiles: test_networks_anchor.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from utom_core.config import TrainConfig
from utom_core.networks import ResnetGenerator
from utom_core.networks.base import LatticeNotch
from utom_core.plugins import get_registry

INSIDE = (slice(None), slice(None), slice(24, -24), slice(24, -24))
"""Away from the borders, where the replicated edge stands in for the unknown outside."""


def _grid(height: int = 100, width: int = 101) -> torch.Tensor:
    """Every frequency of the 4-px lattice but zero, each with its own amplitude and phase."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    rng = np.random.default_rng(0)
    grid = torch.zeros(height, width)
    for ky in range(4):
        for kx in range(4):
            if ky or kx:
                phase = 2 * math.pi * (ky * yy + kx * xx) / 4 + rng.uniform(0, 2 * math.pi)
                grid += float(rng.uniform(0.02, 0.1)) * torch.cos(phase)
    return grid[None, None]


def _lattice_amplitude(image: torch.Tensor) -> float:
    """Peak-to-peak of the image's mean over each phase of the 4-px lattice, less its mean."""
    plane = image[0, 0]
    rows, cols = plane.shape[0] // 4 * 4, plane.shape[1] // 4 * 4
    folded = plane[:rows, :cols].reshape(rows // 4, 4, cols // 4, 4).mean(dim=(0, 2))
    return float(folded.max() - folded.min())


def test_a_pattern_on_the_lattice_goes_and_content_off_it_stays():
    notch = LatticeNotch(6.0)
    grid = _grid()
    assert float(notch(grid)[INSIDE].abs().max()) < 1e-3 * float(grid.abs().max())
    yy, xx = torch.meshgrid(torch.arange(100.0), torch.arange(101.0), indexing="ij")
    tissue = (torch.sin(xx / 3.7) * torch.cos(yy / 2.9))[None, None]  # periods 23 and 18 px
    kept = notch(tissue + grid)
    torch.testing.assert_close(kept[INSIDE], tissue[INSIDE], atol=2e-3, rtol=0)
    period5 = torch.cos(2 * math.pi * xx / 5)[None, None]  # near the 4-px period
    ratio = float(notch(period5)[INSIDE].abs().max())
    assert 0.75 < ratio < 0.9  # 83 % at σ 6


def test_the_notch_keeps_shapes_flat_images_and_channels_apart():
    notch = LatticeNotch(6.0)
    flat = torch.full((2, 3, 37, 29), 0.4)
    torch.testing.assert_close(notch(flat), flat)
    two = torch.cat([_grid(37, 29), torch.zeros(1, 1, 37, 29)], dim=1)
    assert float(notch(two)[:, 1].abs().max()) == 0.0


def test_the_notch_moves_with_its_generator_runs_in_fp32_and_keeps_the_output_range():
    net = ResnetGenerator(1, 1, ngf=4, n_blocks=1, upsampling="transpose", lattice_notch=6.0)
    assert {"notch.phase", "notch.local"} <= dict(net.named_buffers()).keys()
    assert net.to(torch.float64).notch.phase.dtype == torch.float64  # and to any device
    assert "notch.phase" not in net.state_dict()
    notch, x = LatticeNotch(6.0), (0.9 * _grid(48, 40) / 0.3).clamp(-1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = notch(x.to(torch.bfloat16))
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, notch(x.to(torch.bfloat16).float()), atol=0, rtol=0)
    saturated = torch.where(_grid(48, 40) > 0, 1.0, -1.0)
    assert float(notch(saturated).abs().max()) <= 1.0


def test_a_transposed_generators_checkerboard_goes_with_the_notch():
    flat = torch.full((1, 1, 96, 96), 0.2)
    amplitudes = {}
    for sigma in (0.0, 6.0):
        torch.manual_seed(0)
        net = ResnetGenerator(1, 1, ngf=8, n_blocks=1, upsampling="transpose",
                              lattice_notch=sigma).eval()
        for layer in net.modules():  # weights large enough to print what the strides do
            if isinstance(layer, torch.nn.ConvTranspose2d):
                torch.nn.init.normal_(layer.weight, 0.0, 0.5)
        with torch.no_grad():
            out = net(flat)
        amplitudes[sigma] = _lattice_amplitude(out[INSIDE])
    assert amplitudes[0.0] > 0.05, amplitudes
    assert amplitudes[6.0] < 0.01 * amplitudes[0.0], amplitudes


def test_stain_he_trains_notched_transposed_generators_and_others_do_not():
    registry = get_registry()
    stain = registry.task("stain-he").training
    assert (stain["upsampling"], stain["lattice_notch"]) == ("transpose", 6.0)
    assert TrainConfig().lattice_notch == 0.0  # a saved run without the setting had none
    cfg = TrainConfig(ngf=8, n_blocks=1, upsampling="transpose", lattice_notch=6.0)
    assert registry.build_generator(cfg, 1, 3).lattice_notch == 6.0
