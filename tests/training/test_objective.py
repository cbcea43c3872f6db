"""The UTOM objective term by term: ρ schedule, LR schedule, saliency variants, gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from utom_core.config import SaliencyVariant, TrainConfig
from utom_core.methods.cycle import CYCLEGAN, CYCLEGAN_IDENTITY, UTOM
from utom_core.methods.losses import generator_terms, saliency_pair
from utom_core.networks import ResnetGenerator
from utom_core.saliency import SigmoidSaliency
from utom_core.training.schedules import lr_factor, rho


def test_rho_decays_exponentially_per_epoch():
    assert rho(0, 5.0, 100) == 5.0
    assert rho(100, 5.0, 100) == pytest.approx(5.0 / math.e)
    assert rho(1000, 5.0, 100) == pytest.approx(5.0 * math.exp(-10))


def test_decay_length_is_explicit_or_a_fraction_of_the_run():
    assert TrainConfig(images_per_epoch=123).decay_length() == 123
    assert TrainConfig(iterations=1000, batch_size=2, rho_decay_fraction=0.25).decay_length() == 500


def test_lr_is_constant_then_decays_linearly_to_zero():
    factors = [lr_factor(i, 10, 0.5) for i in range(10)]
    assert factors[:5] == [1.0] * 5
    assert all(a > b for a, b in itertools.pairwise(factors[4:]))
    assert 0 < factors[-1] < 0.2


def test_variants_pick_whose_threshold_judges_generated_images():
    t_a, t_b = SigmoidSaliency(-0.5), SigmoidSaliency(0.7, inverted=True)
    paper = saliency_pair(t_a, t_b, SaliencyVariant.paper)
    assert paper.fake_b is t_b and paper.fake_a is t_a
    authors = saliency_pair(t_a, t_b, SaliencyVariant.authors_code)
    assert authors.fake_b.threshold == -0.5 and authors.fake_b.inverted  # source t, target polarity
    assert authors.fake_a.threshold == 0.7 and not authors.fake_a.inverted


def _terms(with_saliency: bool, rho_now: float = 1.0):
    torch.manual_seed(0)
    g = ResnetGenerator(1, 3, ngf=4, n_blocks=1)
    f = ResnetGenerator(3, 1, ngf=4, n_blocks=1)
    a, b = torch.rand(1, 1, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    fake_b, fake_a = g(a), f(b)
    pair = saliency_pair(SigmoidSaliency(0.0), SigmoidSaliency(0.5, inverted=True),
                         SaliencyVariant.paper)
    d = torch.zeros(1, 1, 2, 2)
    return g, generator_terms(TrainConfig(), a, b, fake_b, fake_a, f(fake_b), g(fake_a), d, d,
                              pair if with_saliency else None, rho_now)


def test_saliency_gradient_reaches_the_generator():
    g, terms = _terms(True)
    assert terms["saliency_a"] > 0
    terms["saliency_a"].backward()
    grads = [p.grad.abs().sum() for p in g.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0


def test_total_is_gan_plus_lambda_cycle_plus_rho_saliency():
    _, t = _terms(True, rho_now=0.3)
    expected = (t["gan_ab"] + t["gan_ba"] + 10 * (t["cycle_a"] + t["cycle_b"])
                + 10 * 0.3 * (t["saliency_a"] + t["saliency_b"]))
    torch.testing.assert_close(t["generator"], expected)
    _, c = _terms(False)
    assert c["saliency_a"] == 0
    torch.testing.assert_close(
        c["generator"], c["gan_ab"] + c["gan_ba"] + 10 * (c["cycle_a"] + c["cycle_b"]))


@pytest.mark.parametrize(("method", "identity", "expected"), [
    (UTOM, False, False), (UTOM, True, True), (CYCLEGAN, True, False),
    (CYCLEGAN_IDENTITY, False, True)])
def test_identity_is_a_utom_option_and_fixed_by_the_cyclegan_ablations(method, identity, expected):
    assert method.uses_identity(TrainConfig(method=method.name, identity=identity)) is expected


def test_utom_with_identity_adds_lambda_identity_times_the_identity_terms():
    torch.manual_seed(0)
    g, f = ResnetGenerator(1, 1, ngf=4, n_blocks=1), ResnetGenerator(1, 1, ngf=4, n_blocks=1)
    a, b = torch.rand(1, 1, 16, 16) * 2 - 1, torch.rand(1, 1, 16, 16) * 2 - 1
    fake_b, fake_a = g(a), f(b)
    pair = saliency_pair(SigmoidSaliency(0.0), SigmoidSaliency(0.0), SaliencyVariant.paper)
    d = torch.zeros(1, 1, 2, 2)
    args = (a, b, fake_b, fake_a, f(fake_b), g(fake_a), d, d, pair, 0.3)
    plain = generator_terms(TrainConfig(), *args)
    with_identity = generator_terms(TrainConfig(identity=True), *args, idt_a=f(a), idt_b=g(b))
    assert with_identity["identity_a"] > 0 and with_identity["identity_b"] > 0
    torch.testing.assert_close(
        with_identity["generator"],
        plain["generator"] + 10 * 0.5 * (with_identity["identity_a"]
                                         + with_identity["identity_b"]))
