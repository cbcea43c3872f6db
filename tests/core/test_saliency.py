"""The saliency operator against the formula, in both polarities and bit depths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.saliency import SigmoidSaliency, midpoint_threshold, otsu_threshold


def test_normal_and_inverted_match_the_formula():
    x = torch.linspace(-1, 1, 41).view(1, 1, 1, 41).repeat(1, 3, 1, 1)
    t = 0.2
    normal = SigmoidSaliency(t)(x)
    inverted = SigmoidSaliency(t, inverted=True)(x)
    expected = 1 / (1 + torch.exp(-100 * (x[:, :1] - t)))
    torch.testing.assert_close(normal, expected)
    torch.testing.assert_close(inverted, 1 - expected)
    assert normal.shape == (1, 1, 1, 41)


def test_channel_mean_is_thresholded():
    x = torch.tensor([0.9, -0.9, -0.9]).view(1, 3, 1, 1)  # mean -0.3
    assert SigmoidSaliency(-0.2)(x).item() < 0.01
    assert SigmoidSaliency(-0.4)(x).item() > 0.99


@pytest.mark.parametrize(
    ("dtype", "background", "raw", "content_value", "background_value"),
    [
        (PixelType.uint8, Polarity.dark, 70.0, 200, 10),
        (PixelType.uint16, Polarity.dark, 18000.0, 27000, 5500),
        (PixelType.uint8, Polarity.bright, 220.0, 150, 237),
    ],
)
def test_raw_thresholds_give_content_one_background_zero(dtype, background, raw,
                                                         content_value, background_value):
    hi = 255.0 if dtype is PixelType.uint8 else 65535.0
    norm = Normalisation(low=(0.0,), high=(hi,), dtype=dtype)
    domain = Domain(name="d", channels=1, dtype=dtype, background=background, threshold=raw)
    op = domain.saliency(norm)
    assert op.inverted is (background is Polarity.bright)
    assert op.threshold == pytest.approx(raw / (hi / 2) - 1)
    pixels = np.array([[[content_value, background_value]]], dtype=np.float32)
    mask = op(torch.from_numpy(norm.apply(pixels))[None])[0, 0, 0]
    assert mask[0] > 0.99 and mask[1] < 0.01


def test_paper_threshold_mapping_for_8_bit():
    # the authors map 8-bit thresholds as t / 127.5 - 1
    norm = Normalisation(low=(0.0,), high=(255.0,), dtype=PixelType.uint8)
    assert norm.threshold_to_unit(70) == pytest.approx(70 / 127.5 - 1)
    assert norm.threshold_to_unit(220) == pytest.approx(220 / 127.5 - 1)


def test_estimators_split_two_populations():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(5500, 300, 5000), rng.normal(27000, 2000, 3000)])
    for estimate in (otsu_threshold(values), midpoint_threshold(values)):
        assert 8000 < estimate < 24000
    # the midpoint rule is the average of the two class means
    assert midpoint_threshold(values) == pytest.approx((5500 + 27000) / 2, rel=0.05)


def test_smoothing_removes_speckle():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(-0.5, 0.3, (1, 1, 64, 64)).astype(np.float32))
    raw = SigmoidSaliency(0.0)(x)
    smooth = SigmoidSaliency(0.0, smooth_sigma=2.0)(x)
    assert raw.mean() > 0.03 and smooth.mean() < raw.mean() / 5
