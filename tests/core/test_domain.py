"""Percentile normalisation and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest

from utom_core.domain import Domain, PixelType, fit_normalisation


def test_saturated_pixels_do_not_squash_the_range():
    rng = np.random.default_rng(0)
    image = rng.normal(20000, 3000, 100_000).clip(0, 65535)
    image[:100] = 65535  # 0.1% saturated, as in the real autofluorescence
    norm = fit_normalisation(image[None], Domain(name="af", channels=1))
    assert norm.high[0] < 40000


def test_uint16_round_trip_is_exact_inside_the_range():
    domain = Domain(name="d", channels=1, dtype=PixelType.uint16, percentiles=(0, 100))
    raw = np.arange(0, 65536, 7, dtype=np.uint16)[None]
    norm = fit_normalisation(raw.reshape(1, -1), domain)
    back = norm.invert(norm.apply(raw))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, raw)


def test_rgb_joint_vs_per_channel():
    rgb = np.stack([np.linspace(0, 100, 1000), np.linspace(0, 200, 1000),
                    np.linspace(0, 50, 1000)])
    joint = fit_normalisation(rgb, Domain(name="he", channels=3, percentiles=(0, 100)))
    separate = fit_normalisation(rgb, Domain(name="fl", channels=3, percentiles=(0, 100),
                                             per_channel=True))
    assert len(set(joint.high)) == 1 and separate.high == pytest.approx((100, 200, 50))


def test_constant_image_is_refused():
    with pytest.raises(ValueError, match="no contrast"):
        fit_normalisation(np.full((1, 500), 7.0), Domain(name="d", channels=1))


def test_bad_domains_are_refused():
    with pytest.raises(ValueError):
        Domain(name="d", channels=0)
    with pytest.raises(ValueError):
        Domain(name="d", channels=1, axes="tyx")
    with pytest.raises(ValueError):
        Domain(name="d", channels=1, percentiles=(99, 1))
    with pytest.raises(ValueError):
        Domain(name="d", channels=1, colour="red")
