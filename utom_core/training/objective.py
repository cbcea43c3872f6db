"""The UTOM objective: LSGAN + λ [cycle + ρ saliency] (+ optional identity), term by term.

    L = L_GAN(G) + L_GAN(F) + λ [L_cycle + ρ L_sc]
    L_sc = |T_a(a) - T_b(G(a))|₁ + |T_b(b) - T_a(F(b))|₁      (paper; target's operator)
    ρ = ρ₀ exp(-images_seen / images_per_epoch)

Every reduction runs in fp32, also on the bf16 outputs of networks under autocast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utom_core.config import Method, SaliencyVariant, TrainConfig
from utom_core.saliency import SaliencyOperator, SigmoidSaliency

LOSS_TERMS = (
    "gan_ab", "gan_ba", "cycle_a", "cycle_b", "saliency_a", "saliency_b",
    "identity_a", "identity_b", "generator", "disc_a", "disc_b",
)
"""Every logged loss term, in log order."""


def rho(images_seen: int, rho0: float, images_per_epoch: int) -> float:
    """Saliency weight after ``images_seen`` images: exponential decay per 'epoch'."""
    return rho0 * math.exp(-images_seen / images_per_epoch)


def lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss against the all-ones (real) or all-zeros (fake) target."""
    prediction = prediction.float()
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, in fp32."""
    return F.l1_loss(x.float(), y.float())


def lr_factor(iteration: int, total: int, decay_start: float,
              resumed: tuple[int, float] | None = None) -> float:
    """Constant learning rate, then a linear decay that reaches zero after the last iteration.

    ``resumed`` (k, f): the total was changed at iteration k while the rate was decaying; from
    k on it falls linearly from f, the factor it had reached, to zero after the new last
    iteration, so extending a run never raises its rate (see ``resumed_decay``).
    """
    if resumed is not None:
        at, factor = resumed
        return factor * (total - iteration) / (total - at + 1)
    start = int(decay_start * total)
    if iteration < start:
        return 1.0
    return 1.0 - (iteration - start + 1) / (total - start + 1)


def resumed_decay(iteration: int, planned: int, decay_start: float,
                  resumed: tuple[int, float] | None) -> tuple[int, float] | None:
    """The ``resumed`` anchor of a run whose total is changed from ``planned`` at
    ``iteration``: None while the rate is still full (the decay is planned anew over the new
    total, as if it had been planned so from the start), else where the decay stood."""
    factor = lr_factor(iteration - 1, planned, decay_start, resumed)
    if resumed is None and factor == 1.0:
        return None
    return iteration, factor


@dataclass
class SaliencyPair:
    """The operators that judge each side of L_sc, resolved for a variant."""

    real_a: SaliencyOperator
    fake_b: SaliencyOperator
    real_b: SaliencyOperator
    fake_a: SaliencyOperator


def saliency_pair(
    t_a: SigmoidSaliency, t_b: SigmoidSaliency, variant: SaliencyVariant
) -> SaliencyPair:
    """Paper: T_b judges G(a). Authors' code: the source threshold judges the generated image
    (with the generated domain's polarity, so content still maps to 1)."""
    if variant is SaliencyVariant.paper:
        return SaliencyPair(t_a, t_b, t_b, t_a)

    def with_threshold(op: SigmoidSaliency, source: SigmoidSaliency) -> SigmoidSaliency:
        return SigmoidSaliency(source.threshold, op.slope, op.inverted, op.smooth_sigma,
                               op.weights)

    return SaliencyPair(t_a, with_threshold(t_b, t_a), t_b, with_threshold(t_a, t_b))


def generator_terms(
    cfg: TrainConfig,
    real_a: torch.Tensor, real_b: torch.Tensor,
    fake_b: torch.Tensor, fake_a: torch.Tensor,
    rec_a: torch.Tensor, rec_b: torch.Tensor,
    d_a_fake: torch.Tensor, d_b_fake: torch.Tensor,
    saliency: SaliencyPair, rho_now: float,
    idt_a: torch.Tensor | None = None, idt_b: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """All generator loss terms and their weighted total under ``cfg.method``.

    ``d_b_fake`` is D_B(G(a)), ``d_a_fake`` is D_A(F(b)); ``idt_a`` is F(a), ``idt_b`` G(b).
    """
    lam = cfg.lambda_cycle
    zero = real_a.new_zeros((), dtype=torch.float32)
    terms = {
        "gan_ab": lsgan(d_b_fake, True),
        "gan_ba": lsgan(d_a_fake, True),
        "cycle_a": l1(rec_a, real_a),
        "cycle_b": l1(rec_b, real_b),
        "saliency_a": zero,
        "saliency_b": zero,
        "identity_a": zero,
        "identity_b": zero,
    }
    total = terms["gan_ab"] + terms["gan_ba"] + lam * (terms["cycle_a"] + terms["cycle_b"])
    if cfg.method is Method.utom:
        terms["saliency_a"] = l1(saliency.fake_b(fake_b), saliency.real_a(real_a))
        terms["saliency_b"] = l1(saliency.fake_a(fake_a), saliency.real_b(real_b))
        total = total + lam * rho_now * (terms["saliency_a"] + terms["saliency_b"])
    if cfg.uses_identity:
        assert idt_a is not None and idt_b is not None
        terms["identity_a"] = l1(idt_a, real_a)
        terms["identity_b"] = l1(idt_b, real_b)
        total = total + lam * cfg.lambda_identity * (terms["identity_a"] + terms["identity_b"])
    terms["generator"] = total
    return terms


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss, halved as in CycleGAN so D learns slower than G."""
    return 0.5 * (lsgan(d_real, True) + lsgan(d_fake, False))
