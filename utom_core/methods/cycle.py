"""The two-sided methods: UTOM and the CycleGAN ablations the paper compares it with.

Two generators (G: A → B, F: B → A), two PatchGANs, image pools, LSGAN, L1 cycle loss;
UTOM adds λ ρ L_sc; all three add the shift term λ_shift |G(S a) − S G(a)|₁ of G
(``losses.shift_term``) and, where ``lambda_background`` is on, the background terms of G and F
(``losses.background_term``); the identity term λ λ_idt (|F(a) − a| + |G(b) − b|) is always on
for ``cyclegan-identity``, on where ``identity`` is set for ``utom``, off for ``cyclegan``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from utom_core.config import TrainConfig
from utom_core.methods.base import (
    SALIENCY_SETTINGS,
    GeneratorFactory,
    StepContext,
    StepNetworks,
    TrainingMethod,
    adam,
    background_of,
    shift_of,
)
from utom_core.methods.losses import CYCLE_TERMS, discriminator_loss, generator_terms
from utom_core.networks import PatchGAN


class CycleMethod(TrainingMethod):
    source = "Zhu et al., ICCV 2017 (CycleGAN); Li et al., Light Sci. Appl. 10:60, 2021 (UTOM)"

    def __init__(self, name: str, summary: str, saliency: bool,
                 identity: Literal["never", "setting", "always"]) -> None:
        self.name, self.summary = name, summary
        self.saliency, self.identity = saliency, identity
        self.loss_terms = tuple(
            term for term in CYCLE_TERMS
            if (saliency or not term.startswith("saliency"))
            and (identity != "never" or not term.startswith("identity")))

    def uses_identity(self, cfg: TrainConfig) -> bool:
        return self.identity == "always" or (self.identity == "setting" and cfg.identity)

    def unused_settings(self, cfg: TrainConfig) -> frozenset[str]:
        unused = set() if self.saliency else set(SALIENCY_SETTINGS)
        if self.identity != "setting":  # fixed by the method
            unused.add("identity")
        if not self.uses_identity(cfg):
            unused.add("lambda_identity")
        return frozenset(unused)

    def not_applicable(self, cfg: TrainConfig, channels: tuple[int, int]) -> str | None:
        if self.uses_identity(cfg) and channels[0] != channels[1]:
            return (f"the identity term ({self.name}) needs equal channel counts, not "
                    f"{channels[0]} → {channels[1]}")
        return None

    def build(self, cfg: TrainConfig, channels: tuple[int, int],
              generator: GeneratorFactory) -> dict[str, nn.Module]:
        a, b = channels
        return {"g_ab": generator(a, b), "g_ba": generator(b, a),
                "d_a": PatchGAN(a, cfg.ndf, cfg.d_layers),
                "d_b": PatchGAN(b, cfg.ndf, cfg.d_layers)}

    def optimisers(self, modules: dict[str, nn.Module],
                   cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": adam(modules, cfg, "g_ab", "g_ba"),
                "opt_d": adam(modules, cfg, "d_a", "d_b")}

    def step(self, ctx: StepContext, nets: StepNetworks, optimisers: dict[str, Any],
             real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, run, plain = ctx.cfg, nets.trained, nets.plain
        for name in ("d_a", "d_b"):
            plain[name].requires_grad_(False)
        with ctx.autocast():
            fake_b, fake_a = run["g_ab"](real_a), run["g_ba"](real_b)
            rec_a, rec_b = run["g_ba"](fake_b), run["g_ab"](fake_a)
            idt_a = idt_b = None
            if self.uses_identity(cfg):
                idt_a, idt_b = run["g_ba"](real_a), run["g_ab"](real_b)
            # before the discriminators' forwards: that order sets the sums of G's backward
            shift = shift_of(ctx, run["g_ab"], real_a, fake_b)
            background = (background_of(ctx, 0, real_a, fake_b),
                          background_of(ctx, 1, real_b, fake_a))
            terms = generator_terms(
                cfg, real_a, real_b, fake_b, fake_a, rec_a, rec_b, plain["d_a"](fake_a),
                plain["d_b"](fake_b), ctx.saliency if self.saliency else None, ctx.rho,
                idt_a, idt_b, shift, background)
        optimisers["opt_g"].zero_grad(set_to_none=True)
        terms["generator"].backward()
        optimisers["opt_g"].step()

        for name in ("d_a", "d_b"):
            plain[name].requires_grad_(True)
        pool_a, pool_b = ctx.pools
        pooled_b, pooled_a = pool_b.query(fake_b, ctx.rng), pool_a.query(fake_a, ctx.rng)
        with ctx.autocast():
            terms["disc_b"] = discriminator_loss(run["d_b"](real_b), run["d_b"](pooled_b))
            terms["disc_a"] = discriminator_loss(run["d_a"](real_a), run["d_a"](pooled_a))
        optimisers["opt_d"].zero_grad(set_to_none=True)
        (terms["disc_a"] + terms["disc_b"]).backward()
        optimisers["opt_d"].step()
        return terms


UTOM = CycleMethod("utom", "CycleGAN + the saliency constraint (the paper's method)",
                   saliency=True, identity="setting")
CYCLEGAN = CycleMethod("cyclegan", "CycleGAN: LSGAN + cycle loss, no identity term",
                       saliency=False, identity="never")
CYCLEGAN_IDENTITY = CycleMethod("cyclegan-identity", "CycleGAN with the identity term",
                                saliency=False, identity="always")
