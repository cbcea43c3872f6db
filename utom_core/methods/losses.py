"""The loss terms the methods combine: LSGAN, L1, and UTOM's saliency constraint.

    L = L_GAN(G) + L_GAN(F) + λ [L_cycle + ρ L_sc] + λ_shift L_shift       (UTOM)
    L_sc = |T_a(a) - T_b(G(a))|₁ + |T_b(b) - T_a(F(b))|₁      (paper; target's operator)
    L_shift = |G(S a) - S G(a)|₁, S a shift off the generator's stride lattice
    L_bg = |G(a) - mean background colour of B|₁ where T_a(a) is 0 (and of F(b))

Every reduction runs in fp32, also on the bf16 outputs of networks under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utom_core.config import SaliencyVariant, TrainConfig
from utom_core.saliency import SaliencyOperator, SigmoidSaliency

CYCLE_TERMS = (
    "gan_ab", "gan_ba", "cycle_a", "cycle_b", "saliency_a", "saliency_b",
    "identity_a", "identity_b", "shift_ab", "background_ab", "background_ba", "generator",
    "disc_a", "disc_b",
)
"""The loss terms of the two-sided methods (utom, cyclegan, cyclegan-identity), in log order."""


def lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss against the all-ones (real) or all-zeros (fake) target."""
    prediction = prediction.float()
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, in fp32."""
    return F.l1_loss(x.float(), y.float())


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


def saliency_term(saliency_real: SaliencyOperator, saliency_fake: SaliencyOperator,
                  real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """|T(real) - T'(fake)|₁: the content map kept across one direction of a translation."""
    return l1(saliency_fake(fake), saliency_real(real))


SHIFT_MARGIN = 12
"""Pixels at each edge of the shifted crop left out of the shift term: there the two
predictions see different borders, not a grid."""


def shift_term(generator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
               rng: np.random.Generator, lattice: int) -> torch.Tensor:
    """|G(S x) − S G(x)|₁, S a shift by 1 … lattice − 1 pixels along each axis (drawn from
    ``rng``): ``fake`` is G(``real``), and G of ``real`` cropped at the shift is compared with
    it where both see the same pixels. A grid printed on G's stride lattice stays where it is
    while the content moves, so this term is where a generator learns not to print one —
    the discriminator alone lets it through (docs/results/upsampling.md)."""
    height, width = (side - lattice for side in real.shape[-2:])
    dy, dx = (int(step) for step in rng.integers(1, lattice, size=2))
    shifted = generator(real[..., dy:dy + height, dx:dx + width])
    m = min(SHIFT_MARGIN, height // 4, width // 4)
    return l1(shifted[..., m:height - m, m:width - m],
              fake[..., dy + m:dy + height - m, dx + m:dx + width - m])


BACKGROUND_SHARE = 0.05
"""Least share of a tile's pixels that must be background for its background term."""


def background_term(saliency_real: SaliencyOperator, real: torch.Tensor, fake: torch.Tensor,
                    colour: torch.Tensor) -> torch.Tensor:
    """|``fake`` − ``colour``|₁ where ``real`` is background (weights 1 − T(real)), per tile,
    over the tiles with at least ``BACKGROUND_SHARE`` of background: the colour of empty glass
    or medium is one number a discriminator barely sees (``data.background``). Per pixel, not
    the mean: a generator can meet a mean by darkening some background pixels while others
    stay stuck at the top of tanh."""
    weight = 1.0 - saliency_real(real).float()
    area = weight.sum(dim=(-2, -1))[:, 0]
    error = (fake.float() - colour.view(1, -1, 1, 1)).abs().mean(dim=1, keepdim=True)
    per_tile = (weight * error).sum(dim=(-3, -2, -1)) / area.clamp_min(1.0)
    counted = (area >= BACKGROUND_SHARE * weight[0, 0].numel()).float()
    return (per_tile * counted).sum() / counted.sum().clamp_min(1.0)


def generator_terms(
    cfg: TrainConfig,
    real_a: torch.Tensor, real_b: torch.Tensor,
    fake_b: torch.Tensor, fake_a: torch.Tensor,
    rec_a: torch.Tensor, rec_b: torch.Tensor,
    d_a_fake: torch.Tensor, d_b_fake: torch.Tensor,
    saliency: SaliencyPair | None, rho_now: float,
    idt_a: torch.Tensor | None = None, idt_b: torch.Tensor | None = None,
    shift_ab: torch.Tensor | None = None,
    background: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
) -> dict[str, torch.Tensor]:
    """The two-sided generator terms and their weighted total: saliency where ``saliency``
    is given (UTOM), identity where ``idt_a`` and ``idt_b`` are, the shift term of G where
    ``shift_ab`` is (``shift_term``), the background terms of G and F where ``background``
    holds them (``background_term``).

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
        "shift_ab": zero,
        "background_ab": zero,
        "background_ba": zero,
    }
    total = terms["gan_ab"] + terms["gan_ba"] + lam * (terms["cycle_a"] + terms["cycle_b"])
    if saliency is not None:
        terms["saliency_a"] = saliency_term(saliency.real_a, saliency.fake_b, real_a, fake_b)
        terms["saliency_b"] = saliency_term(saliency.real_b, saliency.fake_a, real_b, fake_a)
        total = total + lam * rho_now * (terms["saliency_a"] + terms["saliency_b"])
    if idt_a is not None and idt_b is not None:
        terms["identity_a"] = l1(idt_a, real_a)
        terms["identity_b"] = l1(idt_b, real_b)
        total = total + lam * cfg.lambda_identity * (terms["identity_a"] + terms["identity_b"])
    if shift_ab is not None:
        terms["shift_ab"] = shift_ab
        total = total + cfg.lambda_shift * shift_ab
    for key, term in zip(("background_ab", "background_ba"), background, strict=True):
        if term is not None:
            terms[key] = term
            total = total + cfg.lambda_background * term
    terms["generator"] = total
    return terms


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss, halved as in CycleGAN so D learns slower than G."""
    return 0.5 * (lsgan(d_real, True) + lsgan(d_fake, False))
