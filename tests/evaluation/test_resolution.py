"""Decorrelation-analysis resolution: it tracks blur, says NaN for nothing, sees direction."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from utom_core.evaluation.base import Sample
from utom_core.evaluation.guide import below_floor, verdict
from utom_core.evaluation.resolution import (
    Anisotropy,
    Resolution,
    anisotropy,
    directional_resolution,
    resolution,
)
from utom_tasks.demo import bundled


@pytest.fixture(scope="module")
def terra() -> np.ndarray:
    """A real 512² crop of the bundled TERRA-foci nuclei."""
    return bundled("terra.tif")[128:640, 128:640].astype(np.float64)


def test_blur_coarsens_the_resolution_in_proportion(terra):
    sigmas = (1, 2, 3, 4, 6)
    found = [resolution(gaussian_filter(terra, s)) for s in sigmas]
    assert all(a < b for a, b in itertools.pairwise(found)), found
    per_sigma = [value / s for value, s in zip(found[-2:], sigmas[-2:], strict=True)]
    assert 2 < per_sigma[0] < 4.5 and abs(per_sigma[1] / per_sigma[0] - 1) < 0.2, found
    assert resolution(terra) < found[0]


def test_noise_and_a_flat_image_resolve_nothing():
    noise = np.random.default_rng(0).normal(size=(256, 256))
    assert math.isnan(resolution(noise))
    assert math.isnan(resolution(np.full((64, 64), 7.0)))
    assert all(math.isnan(v) for v in directional_resolution(np.zeros((32, 32))))
    assert Resolution().evaluate(Sample(prediction=noise[None], input=noise[None])) == {}


def test_a_blur_along_one_axis_is_anisotropic(terra):
    along_rows = anisotropy(gaussian_filter(terra, (4, 0)))
    assert along_rows > 2, along_rows
    assert anisotropy(gaussian_filter(terra, (0, 4))) < 0.5
    assert 0.8 < anisotropy(gaussian_filter(terra, 4)) < 1.25


def test_the_evaluators_score_prediction_and_input(terra):
    sharp, blurred = terra[None], gaussian_filter(terra, 3)[None]
    found = Resolution().evaluate(Sample(prediction=sharp, input=blurred))
    assert found["resolution"] < found["resolution_input"]
    volume = bundled("nuclei.tif").astype(np.float64)
    axial_blur = gaussian_filter(volume, (3, 0, 0))
    found = Anisotropy().evaluate(Sample(prediction=volume[None], input=axial_blur[None]))
    assert found["anisotropy_input"] > 1.5 * found["anisotropy"], found


def test_each_direction_is_reported_so_a_lateral_loss_shows():
    """Blurring across z also brings the ratio closer to 1; the lateral resolution says so."""
    volume = gaussian_filter(bundled("nuclei.tif").astype(np.float64), (3, 0, 0))
    lateral_blur = gaussian_filter(volume, (0, 2, 2))
    found = Anisotropy().evaluate(Sample(prediction=lateral_blur[None], input=volume[None]))
    assert found["anisotropy"] < found["anisotropy_input"], found
    assert found["lateral_resolution"] > 1.3 * found["lateral_resolution_input"], found
    assert found["axial_resolution"] >= found["axial_resolution_input"], found
    assert math.isclose(found["anisotropy"],
                        found["axial_resolution"] / found["lateral_resolution"])


def test_the_guide_reads_lower_and_closest_to_one_the_right_way():
    assert verdict("resolution", 3.0, 6.0) == "finer than the input"
    assert "not finer" in verdict("resolution", 6.0, 3.0)
    assert verdict("anisotropy", 1.2, 2.5) == "closer to 1 than the input"
    assert "not closer" in verdict("anisotropy", 0.3, 1.5)
    # reference-free measures never call a prediction "worse than its input"
    assert below_floor({"resolution": 9.0, "resolution_input": 3.0}) == []


def test_a_512_crop_is_measured_in_well_under_a_second(terra):
    start = time.perf_counter()
    resolution(terra)
    assert time.perf_counter() - start < 1.0  # about 0.1 s on a shared 2-core CPU
