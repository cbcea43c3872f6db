"""The background term: every pixel of G(a) where a is background held to the target
domain's background colour, content pixels left alone."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import tifffile
import torch

from tests.helpers import train
from tests.training.test_model_choice import TINY, toy_stain
from utom_core.config import TrainConfig
from utom_core.data.background import background_colour
from utom_core.data.images import DomainImages
from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.methods.base import StepContext, background_of
from utom_core.methods.losses import SaliencyPair, background_term
from utom_core.methods.pool import ImagePool
from utom_core.saliency import SigmoidSaliency

DARK = SigmoidSaliency(threshold=0.0, slope=100.0, inverted=False)
"""Content where the channel mean is above 0: a dark-background source."""


def source_and_fake(content: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """A source tile whose left ``content`` share is content (bright), and an RGB output that
    paints the background (0.9, 0.8, 0.9) and the content dark."""
    real = -torch.ones(1, 1, 32, 32)
    real[..., : int(32 * content)] = 1.0
    fake = torch.tensor([0.9, 0.8, 0.9]).view(1, 3, 1, 1).repeat(1, 1, 32, 32)
    fake[..., : int(32 * content)] = -0.5
    return real, fake


def test_it_is_zero_for_the_right_background_and_measures_a_cast():
    real, fake = source_and_fake()
    right = torch.tensor([0.9, 0.8, 0.9])
    assert float(background_term(DARK, real, fake, right)) < 1e-4
    cast = torch.tensor([0.9, 0.86, 0.9])  # green 0.06 higher: |0.06| / 3 channels
    assert abs(float(background_term(DARK, real, fake, cast)) - 0.02) < 1e-4


def test_a_background_right_only_on_average_still_costs():
    """Half the background saturated white, half grey: the mean is right, the pixels are
    not (a generator stuck at the top of tanh could otherwise meet a mean by darkening the
    pixels it can still move)."""
    real, fake = source_and_fake()
    fake[..., 0::2, 9:] = 1.0
    fake[..., 1::2, 9:] = 0.6
    colour = torch.tensor([0.8, 0.8, 0.8])  # the background's mean
    assert abs(float(background_term(DARK, real, fake, colour)) - 0.2) < 0.02


def test_content_pixels_get_no_gradient():
    real, fake = source_and_fake()
    fake.requires_grad_(True)
    background_term(DARK, real, fake, torch.tensor([0.5, 0.5, 0.5])).backward()
    assert fake.grad is not None
    assert float(fake.grad[..., :9].abs().max()) < 1e-6 < float(fake.grad[..., 12:].abs().min())


def test_tiles_with_almost_no_background_are_left_out():
    real, fake = source_and_fake(content=0.97)  # one background column of 32: 3 %
    assert float(background_term(DARK, real, fake, torch.tensor([0.0, 0.0, 0.0]))) == 0.0


def test_each_tile_of_a_batch_counts_on_its_own():
    """A batch of a tile with background and one without: the second is left out, so the
    term is the first tile's alone."""
    real, fake = source_and_fake()
    full, _ = source_and_fake(content=1.0)
    colour = torch.tensor([0.5, 0.5, 0.5])
    alone = float(background_term(DARK, real, fake, colour))
    batch = float(background_term(DARK, torch.cat([real, full]), torch.cat([fake, fake]),
                                  colour))
    assert alone > 0.1 and abs(batch - alone) < 1e-6


def test_each_direction_is_judged_by_its_source_and_held_to_the_other_colour():
    """G (side 0): A's content map, B's colour; F (side 1): B's content map, A's colour."""
    bright = SigmoidSaliency(threshold=0.0, slope=100.0, inverted=True)
    pair = SaliencyPair(real_a=DARK, fake_b=bright, real_b=bright, fake_a=DARK)
    colour_a, colour_b = torch.tensor([-0.9]), torch.tensor([0.9, 0.8, 0.9])
    ctx = StepContext(TrainConfig(), pair, 1.0, np.random.default_rng(0),
                      (ImagePool(0), ImagePool(0)), contextlib.nullcontext, 4,
                      (colour_a, colour_b))
    real_a, fake_b = source_and_fake()
    real_b, fake_a = fake_b, real_a  # B's bright background, A's dark one
    assert float(background_of(ctx, 0, real_a, fake_b)) < 1e-4
    assert abs(float(background_of(ctx, 1, real_b, fake_a)) - 0.1) < 1e-4  # −1 against −0.9
    ctx.background = (None, colour_b)
    assert background_of(ctx, 1, real_b, fake_a) is None


def test_the_colour_is_the_mean_of_the_background_pixels(tmp_path):
    rgb = np.zeros((300, 300, 3), np.uint8)
    rgb[:] = (241, 238, 241)  # a bright-field scanner's slightly magenta glass
    rgb[100:200, 100:200] = (150, 60, 140)  # stained tissue
    tifffile.imwrite(tmp_path / "he.tif", rgb, photometric="rgb")
    domain = Domain(name="he", channels=3, dtype=PixelType.uint8, background=Polarity.bright,
                    threshold=220.0)
    norm = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype=PixelType.uint8)
    images = DomainImages([tmp_path / "he.tif"], domain)
    try:
        colour = background_colour(images, norm, domain.saliency(norm))
    finally:
        images.close()
    expected = 2 * np.array([241, 238, 241]) / 255 - 1
    assert colour is not None and np.allclose(colour, expected, atol=2e-3)


def test_an_image_without_background_has_no_colour(tmp_path):
    tifffile.imwrite(tmp_path / "tissue.tif", np.full((64, 64, 3), 90, np.uint8),
                     photometric="rgb")
    domain = Domain(name="he", channels=3, dtype=PixelType.uint8, background=Polarity.bright,
                    threshold=220.0)
    norm = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype=PixelType.uint8)
    images = DomainImages([tmp_path / "tissue.tif"], domain)
    try:
        assert background_colour(images, norm, domain.saliency(norm)) is None
    finally:
        images.close()


@pytest.mark.parametrize(("method", "terms"), [("utom", ("background_ab", "background_ba")),
                                               ("utom-cut", ("background_ab",))])
def test_a_run_logs_the_terms_only_where_they_are_on(tmp_path, blob_tiffs, method, terms):
    rgb, task = toy_stain(tmp_path)
    for weight in (0.0, 5.0):
        cfg = TrainConfig(**{**TINY, "log_every": 1}, iterations=2, seed=1, method=method,
                          lambda_background=weight)
        run = tmp_path / f"run-{weight}"
        train(task, cfg, run, blob_tiffs["a"], [rgb], show_progress=False)
        logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        values = [row[key] for row in logged for key in terms]
        assert (min(values) > 0) if weight else (max(values) == 0.0), (weight, values)
