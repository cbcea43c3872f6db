"""Restoration that never hides a worse image: sparse thresholds, the worse-than-input
warning, and the structure cases beyond nuclei (tiny, wiring). The generators' periodic grid
is tested on real tissue in tests/networks/test_periodic_grid.py."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import train

from utom_core.config import TrainConfig
from utom_core.data.fitting import (
    check_fit,
    content_fraction,
    estimate_threshold,
    fit_domain,
    range_note,
)
from utom_core.domain import Domain, Polarity
from utom_core.errors import UtomError
from utom_core.evaluation.guide import below_floor, worse_warning
from utom_core.plugins import get_registry
from utom_core.saliency import triangle_threshold
from utom_tasks.structures import STRUCTURES, neurites, structure_case

TINY = dict(ngf=8, n_blocks=1, ndf=8, d_layers=2, tile=32, pool_size=4, sample_pixels=5000,
            log_every=3, preview_every=1000, checkpoint_every=1000, iterations=8)
DARK = Domain(name="fluorescence", channels=1)


def test_triangle_threshold_separates_a_sparse_image():
    rng = np.random.default_rng(0)
    image = 100 + rng.normal(0, 5, (200, 200))
    image[100, 20:180] = 3000  # one thin process: 0.4% of the pixels
    image[95:105, 95:105] = 20000
    t = triangle_threshold(image)
    assert 115 < t < 3000


def test_sparse_content_falls_back_to_the_triangle_estimate():
    """The neurite case: the midpoint marks under 1% (refused); auto picks the triangle
    estimate and says why; a given threshold is never replaced."""
    samples = neurites()[None, ::2, ::2].reshape(1, -1)
    fit = fit_domain(samples, DARK, "auto", "midpoint", "neurites.tif")
    assert fit.source == "triangle estimate"
    assert "midpoint estimate" in fit.note and "marked 0." in fit.note
    assert 0.01 <= fit.fraction <= 0.2
    assert "sparse content" in fit.describe()
    midpoint = fit_domain(samples, DARK, "auto", "triangle", "x", check=False)
    assert midpoint.source == "triangle estimate" and not midpoint.note
    with pytest.raises(UtomError, match=r"marks 0\.0% of sampled pixels"):
        fit_domain(samples, DARK, 1e9, "midpoint", "neurites.tif")


def test_triangle_looks_for_dark_content_on_a_bright_background():
    """Bright-field: content is darker than the background, so the triangle runs from the
    background peak towards the dark end."""
    rng = np.random.default_rng(1)
    image = 200 + rng.normal(0, 3, (200, 200))
    image[50:52, 20:180] = 60  # two dark fibre rows on bright-field
    samples = image.reshape(1, -1)
    t = estimate_threshold(samples, "triangle", Polarity.bright)
    assert 60 < t < 195
    assert 0.005 < content_fraction(samples, t, Polarity.bright) < 0.05
    assert estimate_threshold(samples, "triangle", Polarity.dark) > 200  # the other side


def test_blank_images_are_still_refused():
    with pytest.raises(UtomError, match="no contrast"):
        fit_domain(np.full((1, 5000), 700.0), DARK, "auto", "midpoint", "blank.tif")
    rng = np.random.default_rng(2)
    speck = 100 + rng.normal(0, 1, (1, 40000))
    speck[0, :3] = 5000  # three hot pixels: no estimator marks 1% of pixels as content
    fit = fit_domain(speck, DARK, "auto", "midpoint", "speck.tif", check=False)
    with pytest.raises(UtomError, match=r"speck\.tif: threshold"):
        check_fit(fit, "speck.tif")


def test_threshold_command_with_other_matches_training(tmp_path, cli):
    """sr shares one threshold between its domains: `utom threshold --other` prints the value
    training fits on the same images."""
    data = structure_case("sr", "neurites", tmp_path / "case", shrink=2)
    shown = cli("threshold", data.a[0], "--task", "sr", "--other", data.b[0])
    assert shown.code == 0, shown.err
    settings = {**TINY, "iterations": 1, "sample_pixels": TrainConfig().sample_pixels}
    cfg = TrainConfig(**settings, shared_range=True, residual=True, identity=True)
    result = train(get_registry().task("sr"), cfg, tmp_path / "run", data.a, data.b,
                   show_progress=False)
    assert f"threshold {result.meta.threshold_a:.6g} (triangle estimate on both domains" \
        in shown.out
    assert result.meta.threshold_source_a.startswith("triangle estimate on both domains; "
                                                     "sparse content: the midpoint estimate")
    alone = cli("threshold", data.a[0], "--task", "sr")
    assert "--other" in alone.out
    refused = cli("threshold", data.a[0], "--task", "label", "--other", data.b[0])
    assert refused.code != 0 and "no shared_range" in refused.err


def test_below_floor_names_every_worse_metric():
    metrics = {"psnr": 27.5, "psnr_input": 33.3, "ssim": 0.85, "ssim_input": 0.84,
               "ssim_c0": 0.2, "ssim_input_c0": 0.3, "content_iou": 0.5}
    worse = below_floor(metrics)
    assert len(worse) == 2 and worse[0].startswith("psnr 27.5 dB is 5.8 dB below the input's 33.3")
    hair = below_floor({"psnr": 26.2374, "psnr_input": 26.2380})
    assert hair == ["psnr 26.2 dB is 0.0006 dB below the input's 26.2 dB"]
    assert "SSIM" not in worse_warning({"psnr": 30.0, "psnr_input": 29.0}) == ""


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_structure_cases_are_disjoint_bands_with_clean_references(tmp_path, structure):
    data = structure_case("sr", structure, tmp_path, shrink=4)
    test, reference = (tifffile.imread(p) for p in (data.test[0], data.reference[0]))
    assert test.shape == reference.shape and test.dtype == np.uint16
    assert np.abs(test.astype(float) - reference).mean() > 0  # degraded, reference is not


def test_run_warns_when_the_prediction_is_worse_than_its_input(tmp_path, cli):
    """A smoke-budget model (noise: not residual, so not the identity either) on the neurite
    case: `utom run` says it is worse than the input, and the report says so first."""
    data = structure_case("sr", "neurites", tmp_path / "case", shrink=2)
    done = cli("run", "sr", "--budget", "smoke", "--set", "residual=false",
               "--out", tmp_path / "out",
               "--a", data.a[0], "--b", data.b[0], "--test", data.test[0],
               "--reference", data.reference[0])
    assert done.code == 0, done.err
    assert "warning: the prediction is worse than the input" in done.err
    assert "psnr" in done.err.split("warning:")[1]
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.index("Warning: the prediction is worse") < report.index("## Data")


def test_a_shared_range_over_domains_in_different_units_is_doubted(tmp_path, cli):
    """A 10× dimmer exposure of the same specimen: sr pools the ranges; the run says so and
    names the settings that train the domains apart."""
    data = structure_case("sr", "neurites", tmp_path / "case", shrink=2)
    dim = tmp_path / "dim_a.tif"
    tifffile.imwrite(dim, (tifffile.imread(data.a[0]) // 10).astype(np.uint16))
    done = cli("train", "sr", "--a", dim, "--b", data.b[0], "--out", tmp_path / "run",
               "--budget", "smoke", "--set", "iterations=1")
    assert done.code == 0, done.err
    assert "shared_range: domain A's intensity span" in done.err
    assert "--set shared_range=false --set anchor_sigma=0" in done.err
    same = cli("train", "sr", "--a", data.a[0], "--b", data.b[0], "--out", tmp_path / "same",
               "--budget", "smoke", "--set", "iterations=1")
    assert same.code == 0 and "shared_range:" not in same.err


def test_noise_alone_does_not_doubt_a_shared_range():
    """denoise's case: a clean domain and the same specimen with Poisson noise (spans ~2×
    apart, same mean) raise no doubt, nor does a sparser band (same span, a third of the
    mean); the same specimen at a tenth of the exposure does."""
    rng = np.random.default_rng(0)
    clean = np.zeros((64, 64))
    clean[16:48, 16:48] = 400.0
    clean = np.tile(clean, (4, 4)).ravel()[None]
    noisy = rng.poisson(clean / 50.0).astype(float) * 50.0
    dim = rng.poisson(clean / 200.0).astype(float) * 2.0
    domain = Domain(name="fluorescence", channels=1)
    sparse = clean.copy()
    sparse[:, : sparse.shape[1] * 2 // 3] = 0.0
    assert range_note(noisy, clean, domain, domain) == ""
    assert range_note(sparse, clean, domain, domain) == ""
    assert "differ" in range_note(dim, clean, domain, domain)
