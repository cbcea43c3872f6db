"""Evaluators: values that would fail if a range, a reduction or a mask were wrong."""

import math

import numpy as np
import pytest
from torchmetrics.functional.image import structural_similarity_index_measure

from utom_core.domain import Normalisation, PixelType
from utom_core.evaluation.base import Sample
from utom_core.evaluation.colour import ColorFidelity, histogram, wasserstein_of
from utom_core.evaluation.metrics import PSNR, SSIM, ContentOverlap, overlap, ssim_sum
from utom_core.saliency import SigmoidSaliency

RNG = np.random.default_rng(0)


def smooth_image(shape=(1, 64, 64)) -> np.ndarray:
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    plane = 0.6 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return np.broadcast_to(plane, shape).astype(np.float32).copy()


def test_psnr_identical_is_infinite_and_known_noise_matches_formula():
    ref = smooth_image()
    assert PSNR().evaluate(Sample(prediction=ref, reference=ref))["psnr"] == math.inf
    noisy = ref + 0.1 * np.where(RNG.random(ref.shape) < 0.5, -1, 1).astype(np.float32)
    # MSE exactly 0.01 on a range of 2: 10 log10(4 / 0.01) = 26.02 dB
    value = PSNR().evaluate(Sample(prediction=noisy, reference=ref))["psnr"]
    assert value == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-3)


def test_psnr_on_unit_scale_equals_psnr_on_0_1():
    ref = smooth_image()
    pred = ref + 0.05
    on_unit = PSNR().evaluate(Sample(prediction=pred, reference=ref))["psnr"]
    mse01 = np.mean(((pred + 1) / 2 - (ref + 1) / 2) ** 2)
    assert on_unit == pytest.approx(10 * math.log10(1 / mse01), rel=1e-5)


def test_psnr_needs_reference_and_reports_input_baseline():
    ref = smooth_image()
    assert PSNR().evaluate(Sample(prediction=ref)) == {}
    metrics = PSNR().evaluate(Sample(prediction=ref, reference=ref, baseline=ref + 0.1))
    assert metrics["psnr_input"] == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-3)


def test_ssim_identical_is_one_and_per_channel_for_rgb():
    ref = RNG.uniform(-1, 1, (3, 40, 48)).astype(np.float32)
    pred = ref.copy()
    pred[2] = RNG.uniform(-1, 1, (40, 48))  # unrelated: SSIM near 0
    metrics = SSIM().evaluate(Sample(prediction=pred, reference=ref))
    assert metrics["ssim_c0"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["ssim_c1"] == pytest.approx(1.0, abs=1e-5)
    assert abs(metrics["ssim_c2"]) < 0.1
    assert metrics["ssim"] == pytest.approx(np.mean([metrics[f"ssim_c{i}"] for i in range(3)]))


def test_ssim_strips_equal_whole_image(monkeypatch):
    import utom_core.evaluation.metrics as metrics

    ref = smooth_image((1, 90, 70))[0]
    pred = ref + RNG.normal(0, 0.1, ref.shape).astype(np.float32)
    whole = _ssim_mean(pred, ref)
    monkeypatch.setattr(metrics, "SSIM_STRIP", 16)
    assert _ssim_mean(pred, ref) == pytest.approx(whole, abs=1e-6)
    import torch

    expected = structural_similarity_index_measure(
        torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None], data_range=2.0
    )
    assert whole == pytest.approx(float(expected), abs=1e-6)


def test_ssim_volume_is_mean_over_slices():
    ref = smooth_image((1, 2, 32, 32))
    pred = ref.copy()
    pred[0, 1] = RNG.uniform(-1, 1, (32, 32))
    value = SSIM().evaluate(Sample(prediction=pred, reference=ref))["ssim"]
    assert value == pytest.approx((1.0 + _ssim_mean(pred[0, 1], ref[0, 1])) / 2, abs=1e-6)


def test_overlap_of_known_masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[:, :2] = True  # 8 pixels, 4 shared, union 12
    assert overlap(a, b) == pytest.approx((4 / 12, 8 / 16))
    assert overlap(np.zeros(3, bool), np.zeros(3, bool)) == (1.0, 1.0)


def test_content_uses_each_domain_operator():
    source = -np.ones((1, 8, 8), np.float32)
    source[:, :4] = 1.0  # bright content, dark background (fluorescence)
    prediction = np.ones((3, 8, 8), np.float32)
    prediction[:, :4, :4] = -1.0  # dark content, bright background (H&E)
    sample = Sample(
        prediction=prediction,
        input=source,
        reference=prediction.copy(),
        input_saliency=SigmoidSaliency(0.0),
        output_saliency=SigmoidSaliency(0.0, inverted=True),
    )
    metrics = ContentOverlap().evaluate(sample)
    assert metrics["content_iou"] == pytest.approx(0.5)
    assert metrics["content_dice"] == pytest.approx(2 * 16 / (32 + 16))
    assert metrics["content_iou_ref"] == 1.0
    assert ContentOverlap().evaluate(Sample(prediction=prediction)) == {}


def test_content_on_volumes():
    volume = -np.ones((1, 3, 6, 6), np.float32)
    volume[:, 1] = 1.0
    sample = Sample(prediction=volume, input=volume, input_saliency=SigmoidSaliency(0.0),
                    output_saliency=SigmoidSaliency(0.0))
    assert ContentOverlap().evaluate(sample) == {"content_iou": 1.0, "content_dice": 1.0}


def _ssim_mean(image, reference):
    return ssim_sum(image, reference) / image.size


def _wasserstein(values, other):
    return wasserstein_of(histogram(values), values.size, histogram(other), other.size)


def test_wasserstein_of_shifted_values_is_the_shift_in_8bit_levels():
    values = RNG.uniform(-0.8, 0.5, 10_000)
    assert _wasserstein(values, values) == 0.0
    assert _wasserstein(values, values + 20 / 127.5) == pytest.approx(20, abs=1.0)


def test_color_separates_tissue_and_background():
    ref = np.ones((3, 16, 16), np.float32)
    ref[:, :8] = -0.5  # tissue (dark on bright)
    pred = ref.copy()
    pred[:, 8:] = 1.0 - 40 / 127.5  # background 40 levels darker, tissue exact
    operator = SigmoidSaliency(0.5, inverted=True)
    sample = Sample(prediction=pred, reference=ref, output_saliency=operator)
    metrics = ColorFidelity().evaluate(sample)
    assert metrics["color_emd_tissue"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["color_emd_background"] == pytest.approx(40, abs=1.0)
    assert metrics["color_emd"] == pytest.approx(20, abs=1.0)
    assert ColorFidelity().evaluate(Sample(prediction=pred[:1], reference=ref[:1])) == {}


def test_color_distance_is_in_levels_of_the_targets_fitted_range():
    """A prediction 40 bins off on [-1, 1] is 40 × 150/255 8-bit levels off where the target's
    range was fitted to 50–200, and as many 8-bit levels of a 16-bit RGB scaled to 8 bits."""
    ref = np.full((3, 16, 16), -0.2, np.float32)
    pred = ref + 40 / 127.5
    fitted = Normalisation(low=(50.0,) * 3, high=(200.0,) * 3, dtype=PixelType.uint8)
    wide = Normalisation(low=(0.0,) * 3, high=(65535.0 * 150 / 255,) * 3,
                         dtype=PixelType.uint16)
    for norm in (fitted, wide):
        sample = Sample(prediction=pred, reference=ref, output_normalisation=norm)
        assert ColorFidelity().evaluate(sample)["color_emd"] == pytest.approx(40 * 150 / 255,
                                                                              abs=0.6)
    assert ColorFidelity().evaluate(Sample(prediction=pred, reference=ref))["color_emd"] == \
        pytest.approx(40, abs=1.0)


def test_builtin_evaluators_are_registered(monkeypatch):
    monkeypatch.setenv("UTOM_DISABLE_PLUGIN_AUTOLOAD", "1")
    from utom_core.plugins import build_registry

    evaluators = build_registry().evaluators
    assert {"psnr", "ssim", "content", "color", "lab"} <= set(evaluators)
    assert all(evaluators[name].name == name for name in evaluators)
