"""Correctness fixes from the review of issue 12: per-channel thresholds, saliency in fp32 under
autocast, extending a finished run."""

from __future__ import annotations

import contextlib
import itertools
import json
import math

import numpy as np
import pytest
import torch
from helpers import train

from utom_core.commands.threshold import mask_overlay
from utom_core.config import SaliencyVariant, TrainConfig
from utom_core.domain import Domain, PixelType, Polarity, fit_normalisation
from utom_core.methods.losses import discriminator_loss, generator_terms, saliency_pair
from utom_core.networks import PatchGAN, ResnetGenerator
from utom_core.saliency import SigmoidSaliency
from utom_core.task import Task

# -- 1. per-channel thresholds: one raw threshold, one mask, in training and in the preview ----

RANGES = ((0.0, 300.0), (0.0, 60000.0), (1000.0, 1200.0))
"""Three channels of very different ranges (raw units)."""


def _three_channels(background: Polarity, smooth: float = 0.0):
    """A per-channel domain, a raw (3, H, W) image, its fitted normalisation and a threshold
    on the raw channel mean that makes about half the pixels content."""
    rng = np.random.default_rng(4)
    raw = np.stack([rng.uniform(lo, hi, (48, 48)) for lo, hi in RANGES]).astype(np.uint16)
    domain = Domain(name="three labels", channels=3, dtype=PixelType.uint16, per_channel=True,
                    background=background, saliency_smooth=smooth)
    norm = fit_normalisation(raw.reshape(3, -1), domain)
    threshold = float(np.median(raw.astype(np.float64).mean(axis=0)))
    return domain, raw, norm, threshold


def _training_mask(domain, raw, norm, threshold) -> np.ndarray:
    """What L_sc and the tile sampler see: the domain's operator on the normalised image."""
    operator = domain.saliency(norm, threshold)
    unit = torch.from_numpy(norm.apply(raw))[None]
    return operator(unit)[0, 0].numpy() > 0.5


@pytest.mark.parametrize("background", [Polarity.dark, Polarity.bright])
def test_a_raw_threshold_is_on_the_channel_mean_of_raw_pixels(background):
    domain, raw, norm, threshold = _three_channels(background)
    assert len(set(norm.high)) == 3  # really per-channel ranges
    low, high = np.array(norm.low)[:, None, None], np.array(norm.high)[:, None, None]
    mean = np.clip(raw.astype(np.float64), low, high).mean(axis=0)  # inside the fitted range
    expected = mean < threshold if background is Polarity.bright else mean > threshold
    clear = np.abs(mean - threshold) > 1e-3 * threshold  # float rounding right at the edge
    assert clear.mean() > 0.95
    mask = _training_mask(domain, raw, norm, threshold)
    assert 0.3 < expected.mean() < 0.7
    np.testing.assert_array_equal(mask[clear], expected[clear])


def test_the_slope_stays_on_the_unit_scale_with_per_channel_ranges():
    domain, _, norm, threshold = _three_channels(Polarity.dark)
    operator = domain.saliency(norm, threshold)
    t = norm.threshold_to_unit(threshold)
    u = torch.linspace(-1, 1, 21)
    x = u.view(1, 1, 1, -1).repeat(1, 3, 1, 1)  # every channel at the same unit value
    torch.testing.assert_close(operator(x)[0, 0, 0], torch.sigmoid(100.0 * (u - t)))


@pytest.mark.parametrize(("background", "smooth"),
                         [(Polarity.dark, 0.0), (Polarity.bright, 0.0), (Polarity.dark, 1.5)])
def test_the_threshold_preview_shows_the_training_mask(background, smooth):
    domain, raw, norm, threshold = _three_channels(background, smooth)
    shown = mask_overlay(raw, domain, norm, threshold)
    nothing = 1e12 if background is Polarity.dark else -1e12  # a threshold marking no content
    plain = mask_overlay(raw, domain, norm, nothing)
    magenta = (plain == np.array([255, 0, 255], dtype=np.uint8)).all(axis=-1)
    assert not magenta.any()  # tinting changes every pixel of this image
    tinted = (shown != plain).any(axis=-1)
    training = _training_mask(domain, raw, norm, threshold)
    assert 0.2 < training.mean() < 0.8
    np.testing.assert_array_equal(tinted, training)


# -- 2. saliency and losses in fp32 under bf16 autocast ---------------------------------------

def _tiny_objective(autocast: bool):
    """Network outputs, generator loss terms, discriminator loss and saliency maps of one
    tiny forward pass, in fp32 or under CPU bf16 autocast."""
    torch.manual_seed(0)
    g, f = ResnetGenerator(3, 3, ngf=8, n_blocks=1), ResnetGenerator(3, 3, ngf=8, n_blocks=1)
    d_a, d_b = PatchGAN(3, 8, 2), PatchGAN(3, 8, 2)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    pair = saliency_pair(SigmoidSaliency(0.0, smooth_sigma=1.0),
                         SigmoidSaliency(0.05, inverted=True), SaliencyVariant.paper)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with context:
        fake_b, fake_a = g(a), f(b)
        outputs = dict(real_a=a, real_b=b, fake_b=fake_b, fake_a=fake_a, rec_a=f(fake_b),
                       rec_b=g(fake_a), d_a_fake=d_a(fake_a), d_b_fake=d_b(fake_b),
                       idt_a=f(a), idt_b=g(b), d_b_real=d_b(b))
        terms, maps = _losses(pair, outputs)
    return outputs, terms, maps


def _losses(pair, o):
    terms = generator_terms(TrainConfig(identity=True), o["real_a"], o["real_b"], o["fake_b"],
                            o["fake_a"], o["rec_a"], o["rec_b"], o["d_a_fake"], o["d_b_fake"],
                            pair, 0.3, o["idt_a"], o["idt_b"])
    terms["disc_b"] = discriminator_loss(o["d_b_real"], o["d_b_fake"])
    maps = {"fake_b": pair.fake_b(o["fake_b"]), "fake_a": pair.fake_a(o["fake_a"]),
            "real_a": pair.real_a(o["real_a"])}
    return terms, maps


def test_saliency_maps_and_losses_are_fp32_under_bf16_autocast():
    outputs, terms, maps = _tiny_objective(autocast=True)
    assert outputs["d_b_fake"].dtype == torch.bfloat16  # the networks did run in bf16
    assert outputs["fake_b"].dtype == torch.float32  # the generators' tanh output is fp32
    assert {name: t.dtype for name, t in maps.items()} == dict.fromkeys(maps, torch.float32)
    assert {name: t.dtype for name, t in terms.items()} == dict.fromkeys(terms, torch.float32)


def test_under_autocast_the_objective_equals_its_fp32_value_on_the_same_outputs():
    """Only the networks may round: saliency and reductions of the bf16 outputs, computed under
    autocast, equal the fp32 computation on the same outputs."""
    outputs, terms, maps = _tiny_objective(autocast=True)
    pair = saliency_pair(SigmoidSaliency(0.0, smooth_sigma=1.0),
                         SigmoidSaliency(0.05, inverted=True), SaliencyVariant.paper)
    exact_terms, exact_maps = _losses(pair, {k: v.float() for k, v in outputs.items()})
    for name in maps:
        torch.testing.assert_close(maps[name].float(), exact_maps[name], msg=name)
    for name in terms:
        torch.testing.assert_close(terms[name].float(), exact_terms[name], msg=name)


def test_under_autocast_the_objective_stays_close_to_the_fp32_run():
    _, terms, _ = _tiny_objective(autocast=True)
    _, reference, _ = _tiny_objective(autocast=False)
    for name in terms:
        torch.testing.assert_close(terms[name], reference[name], rtol=2e-2, atol=2e-3, msg=name)


# -- 3. extending a run continues its learning-rate and ρ schedules ---------------------------

TINY = dict(ngf=8, n_blocks=1, ndf=8, d_layers=2, tile=32, pool_size=4, sample_pixels=5000,
            log_every=3, preview_every=1000, checkpoint_every=1000)
DENOISE = Task(name="toy-denoise", summary="toy",
               domain_a=Domain(name="noisy", channels=1), domain_b=Domain(name="clean", channels=1))


def _log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_extending_a_finished_run_continues_the_decayed_learning_rate(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=6, seed=2, lr_decay_start=0.5)
    run = tmp_path / "run"
    train(DENOISE, cfg, run, blob_tiffs["a"], blob_tiffs["b"], show_progress=False)
    planned = _log(run)
    train(DENOISE, cfg, run, resume=True, iterations=10, show_progress=False)
    rows = _log(run)
    assert [row["iteration"] for row in rows] == list(range(1, 11))
    assert rows[:6] == planned
    lr = [row["lr"] for row in rows]  # lr[i]: the rate of iteration index i
    last = lr[5]
    assert 0 < lr[6] <= last < cfg.lr
    # the extension decays linearly from the rate reached down to zero after its last iteration
    assert lr[6:] == pytest.approx([last * (10 - i) / (10 - 6 + 1) for i in range(6, 10)],
                                   rel=1e-12)
    # ρ is not restarted either: it keeps the run's decay length, fixed when it started
    per_epoch = json.loads((run / "run.json").read_text())["images_per_epoch"]
    assert [row["rho"] for row in rows] == pytest.approx(
        [cfg.rho0 * math.exp(-i * cfg.batch_size / per_epoch) for i in range(10)], rel=1e-12)
    # a second extension continues from there again: the rate never rises
    train(DENOISE, cfg, run, resume=True, iterations=12, show_progress=False)
    lr = [row["lr"] for row in _log(run)]
    assert len(lr) == 12 and all(b <= a for a, b in itertools.pairwise(lr))
    assert lr[-1] > 0


def test_a_new_total_before_the_decay_equals_planning_it_from_the_start(tmp_path, blob_tiffs):
    """While the rate is still full, a longer total re-plans the decay: stopped at 3 of 8 and
    extended to 12 gives the very weights of a run planned for 12 (ρ's decay length given)."""
    cfg = TrainConfig(**TINY, iterations=8, seed=5, images_per_epoch=50)
    extended, planned = tmp_path / "extended", tmp_path / "planned"
    train(DENOISE, cfg, extended, blob_tiffs["a"], blob_tiffs["b"], stop_at=3, show_progress=False)
    train(DENOISE, cfg, extended, resume=True, iterations=12, show_progress=False)
    train(DENOISE, cfg.model_copy(update={"iterations": 12}), planned, blob_tiffs["a"],
          blob_tiffs["b"], show_progress=False)
    assert [row["lr"] for row in _log(extended)] == [row["lr"] for row in _log(planned)]
    one = torch.load(extended / "checkpoints" / "last.pt", weights_only=True)
    two = torch.load(planned / "checkpoints" / "last.pt", weights_only=True)
    for name in ("g_ab", "g_ba", "d_a", "d_b", "ema_ab", "ema_ba"):
        for key in one[name]:
            assert torch.equal(one[name][key], two[name][key]), (name, key)
