"""CIELAB colour metrics: the conversion against known values, ΔE and the Lab EMD on images
whose answer is known, and the target's fitted range undone before converting."""

from __future__ import annotations

import numpy as np
import pytest

from utom_core.domain import Normalisation, PixelType
from utom_core.evaluation.base import Region, Sample
from utom_core.evaluation.lab import LabColour, srgb_to_lab
from utom_core.saliency import SigmoidSaliency

KNOWN = [((255, 255, 255), (100.0, 0.0, 0.0)), ((0, 0, 0), (0.0, 0.0, 0.0)),
         ((255, 0, 0), (53.24, 80.09, 67.20)), ((0, 255, 0), (87.73, -86.18, 83.18)),
         ((0, 0, 255), (32.30, 79.19, -107.86)), ((128, 128, 128), (53.59, 0.0, 0.0))]
FULL = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype=PixelType.uint8)
TISSUE, BACKGROUND = (150, 60, 140), (240, 235, 238)
"""A purple stain and a pale bright-field background (8-bit sRGB)."""


@pytest.mark.parametrize(("rgb", "lab"), KNOWN)
def test_srgb_to_lab_matches_known_values(rgb, lab):
    assert srgb_to_lab(np.array(rgb, float)) == pytest.approx(lab, abs=0.01)


def _image(tissue: tuple[int, ...], background: tuple[int, ...], width: int = 32
           ) -> np.ndarray:
    """8-bit RGB (3, 32, width): tissue on the left half, background on the right."""
    image = np.empty((3, 32, width))
    image[:, :, : width // 2] = np.array(tissue)[:, None, None]
    image[:, :, width // 2:] = np.array(background)[:, None, None]
    return image


def _sample(prediction: np.ndarray, reference: np.ndarray,
            normalisation: Normalisation = FULL) -> Sample:
    unit = normalisation.apply  # the scale the evaluators see
    return Sample(prediction=unit(prediction), reference=unit(reference),
                  output_saliency=SigmoidSaliency(normalisation.threshold_to_unit(200.0),
                                                  inverted=True),
                  output_normalisation=normalisation)


def _lab(rgb: tuple[int, ...]) -> np.ndarray:
    return srgb_to_lab(np.array(rgb, float))


def test_delta_e_and_emd_of_uniform_regions_are_the_lab_distances():
    pale_tissue = (170, 90, 160)
    metrics = LabColour().evaluate(_sample(_image(pale_tissue, BACKGROUND),
                                           _image(TISSUE, BACKGROUND)))
    shift = _lab(pale_tissue) - _lab(TISSUE)
    assert metrics["delta_e_tissue"] == pytest.approx(np.linalg.norm(shift), abs=1e-6)
    assert metrics["lab_emd_tissue"] == pytest.approx(np.abs(shift).mean(), abs=0.1)
    assert metrics["delta_e_background"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["lab_emd_background"] == pytest.approx(0.0, abs=1e-9)


def test_emd_sees_a_spread_that_the_mean_colour_does_not():
    rng = np.random.default_rng(0)
    reference = _image(TISSUE, BACKGROUND)
    noisy = reference.copy()
    noisy[:, :, :16] += rng.choice([-20, 20], size=(1, 32, 16))  # same mean, wider spread
    metrics = LabColour().evaluate(_sample(noisy, reference))
    assert metrics["delta_e_tissue"] < 1.0
    assert metrics["lab_emd_tissue"] > 2.0
    grey = Sample(prediction=noisy[:1] / 127.5 - 1, reference=reference[:1] / 127.5 - 1)
    assert LabColour().evaluate(grey) == {}  # no colour to compare


def test_colour_is_judged_in_raw_values_not_on_the_fitted_scale():
    fitted = Normalisation(low=(47.0,) * 3, high=(249.0,) * 3, dtype=PixelType.uint8)
    darker = (140, 50, 130)
    metrics = LabColour().evaluate(_sample(_image(darker, BACKGROUND),
                                           _image(TISSUE, BACKGROUND), fitted))
    expected = np.linalg.norm(_lab(darker) - _lab(TISSUE))
    assert metrics["delta_e_tissue"] == pytest.approx(expected, abs=1e-3)


def test_regions_streamed_in_strips_score_what_the_whole_image_scores():
    rng = np.random.default_rng(1)
    prediction = (_image(TISSUE, BACKGROUND) + rng.normal(0, 15, (3, 32, 32))).clip(0, 255)
    reference = _image((160, 70, 150), BACKGROUND)
    sample = _sample(prediction, reference)
    whole = LabColour().evaluate(sample)
    strips = LabColour().accumulator()
    for start in range(0, 32, 8):
        strips.add(Region(sample, slice(start, start + 8)))
    assert strips.result() == pytest.approx(whole, abs=1e-9)
