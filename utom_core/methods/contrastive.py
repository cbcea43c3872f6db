"""One-sided contrastive methods: CUT, FastCUT (Park et al., ECCV 2020) and UTOM-CUT.

One generator G: A → B and one PatchGAN on B (LSGAN, no image pool: CUT's defaults); instead
of a second generator and a cycle, PatchNCE ties every output patch to the input patch at
the same place (``patchnce``). ``cut``: λ_NCE 1 with the NCE identity term on B
(PatchNCE(b, G(b)), averaged with the A term); ``fastcut``: λ_NCE 10, no identity term, and
flip equivariance (half the steps G sees the mirrored input, and its output's features are
mirrored back before comparing); ``utom-cut``: ``cut`` plus UTOM's saliency constraint on G,
λ ρ |T_a(a) − T_b(G(a))|₁, with the same operators, thresholds and ρ schedule as ``utom``.

Where A and B differ in channel count (stain-he: 1 → 3) G's encoder cannot read B images:
the NCE identity term is left out, and G(a) is read by the encoder as its channel mean
broadcast to A's channels — negated where one domain has a dark and the other a bright
background (autofluorescence → H&E), so content is bright in both images the encoder
compares (a fixed projection, no parameters).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
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
from utom_core.methods.losses import discriminator_loss, lsgan, saliency_term
from utom_core.methods.patchnce import ProjectionHeads, patch_nce_loss
from utom_core.networks import PatchGAN, ResnetGenerator

CUT_TERMS = ("gan_ab", "nce_a", "nce_b", "saliency_a", "shift_ab", "background_ab", "generator",
             "disc_b")


class PatchNCESettings(BaseModel):
    """The contrastive methods' own settings (``method_settings``), CUT's defaults."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lambda_nce: float = Field(1.0, ge=0)
    """Weight λ_NCE of the PatchNCE loss (CUT 1, FastCUT 10, Park et al. 2020)."""
    nce_patches: int = Field(256, ge=1, le=4096)
    """Patches per encoder tap in PatchNCE (CUT: 256)."""
    nce_temperature: float = Field(0.07, gt=0)
    """Temperature τ of PatchNCE's similarities (CUT: 0.07)."""


class FastCUTSettings(PatchNCESettings):
    """FastCUT's: λ_NCE 10."""

    lambda_nce: float = Field(10.0, ge=0)
    """Weight λ_NCE of the PatchNCE loss (FastCUT: 10)."""


class ContrastiveMethod(TrainingMethod):
    two_sided = False
    source = ("Park, Efros, Zhang, Zhu, ECCV 2020 (CUT, FastCUT; defaults of their "
              "BSD-licensed code: λ_GAN 1, 256 patches, τ 0.07, LSGAN, no image pool)")

    def __init__(self, name: str, summary: str, settings_model: type[PatchNCESettings],
                 nce_identity: bool, flip_equivariance: bool, saliency: bool) -> None:
        self.name, self.summary = name, summary
        self.settings_model, self.nce_identity = settings_model, nce_identity
        self.flip_equivariance, self.saliency = flip_equivariance, saliency
        self.loss_terms = tuple(term for term in CUT_TERMS
                                if (saliency or term != "saliency_a")
                                and (nce_identity or term != "nce_b"))
        if saliency:
            self.setting_notes = {"lambda_cycle": "weights the saliency term, λρ; no cycle loss"}

    def unused_settings(self, cfg: TrainConfig) -> frozenset[str]:
        """No F, no cycle, no image pool; λ and the ρ schedule only with the saliency term."""
        unused = {"identity", "lambda_identity", "pool_size"}
        return frozenset(unused if self.saliency else unused | SALIENCY_SETTINGS | {"lambda_cycle"})

    def settings(self, cfg: TrainConfig, source: str = "settings") -> PatchNCESettings:
        settings = super().settings(cfg, source)
        assert isinstance(settings, PatchNCESettings)
        return settings

    def not_applicable(self, cfg: TrainConfig, channels: tuple[int, int]) -> str | None:
        if cfg.generator != "resnet":
            return f"{self.name} reads the resnet generator's encoder, not {cfg.generator}'s"
        if cfg.residual and channels[0] != channels[1]:
            return "residual generators need equal channel counts"
        return None

    def build(self, cfg: TrainConfig, channels: tuple[int, int],
              generator: GeneratorFactory) -> dict[str, nn.Module]:
        self.settings(cfg)  # wrong settings are refused before anything is built
        g_ab = cast(ResnetGenerator, generator(*channels))  # not_applicable: resnet only
        return {"g_ab": g_ab, "d_b": PatchGAN(channels[1], cfg.ndf, cfg.d_layers),
                "heads": ProjectionHeads(g_ab.encoder_channels())}

    def optimisers(self, modules: dict[str, nn.Module],
                   cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": adam(modules, cfg, "g_ab", "heads"), "opt_d": adam(modules, cfg, "d_b")}

    def step(self, ctx: StepContext, nets: StepNetworks, optimisers: dict[str, Any],
             real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, run, plain = ctx.cfg, nets.trained, nets.plain
        g_plain = plain["g_ab"]
        settings = self.settings(cfg)
        flipped = self.flip_equivariance and bool(ctx.rng.random() < 0.5)
        same_channels = real_a.shape[1] == real_b.shape[1]
        identity = self.nce_identity and same_channels
        source = torch.flip(real_a, dims=[3]) if flipped else real_a
        zero = real_a.new_zeros((), dtype=torch.float32)

        flip_polarity = (getattr(ctx.saliency.real_a, "inverted", False)
                         != getattr(ctx.saliency.fake_b, "inverted", False))

        def as_input(image: torch.Tensor) -> torch.Tensor:
            if same_channels:
                return image
            mean = image.mean(dim=1, keepdim=True)
            mean = -mean if flip_polarity else mean  # content bright, as in A
            return mean.expand(-1, real_a.shape[1], -1, -1)

        def nce(original: torch.Tensor, output: torch.Tensor, mirrored: bool) -> torch.Tensor:
            return settings.lambda_nce * patch_nce_loss(
                g_plain.encoder_features, run["heads"], original, output, settings.nce_patches,
                settings.nce_temperature, ctx.rng, mirrored)

        with ctx.autocast():
            fake_b = run["g_ab"](source)
            idt_b = run["g_ab"](real_b) if identity else None
        # D first, as CUT does: on the real B and this step's G(a), detached
        with ctx.autocast():
            terms = {"disc_b": discriminator_loss(run["d_b"](real_b), run["d_b"](fake_b.detach()))}
        optimisers["opt_d"].zero_grad(set_to_none=True)
        terms["disc_b"].backward()
        optimisers["opt_d"].step()

        plain["d_b"].requires_grad_(False)
        with ctx.autocast():
            terms["gan_ab"] = lsgan(plain["d_b"](fake_b), True)
            terms["nce_a"] = nce(real_a, as_input(fake_b), flipped)
            terms["nce_b"] = nce(real_b, idt_b, False) if idt_b is not None else zero
            nce_total = (terms["nce_a"] + terms["nce_b"]) / 2 if identity else terms["nce_a"]
            terms["saliency_a"] = zero
            if self.saliency:
                shown = torch.flip(fake_b, dims=[3]) if flipped else fake_b
                terms["saliency_a"] = saliency_term(ctx.saliency.real_a, ctx.saliency.fake_b,
                                                    real_a, shown)
            shift = shift_of(ctx, run["g_ab"], source, fake_b)
            terms["shift_ab"] = zero if shift is None else shift
            background = background_of(ctx, 0, source, fake_b)
            terms["background_ab"] = zero if background is None else background
            terms["generator"] = (terms["gan_ab"] + nce_total
                                  + cfg.lambda_cycle * ctx.rho * terms["saliency_a"]
                                  + cfg.lambda_shift * terms["shift_ab"]
                                  + cfg.lambda_background * terms["background_ab"])
        optimisers["opt_g"].zero_grad(set_to_none=True)
        terms["generator"].backward()
        optimisers["opt_g"].step()
        plain["d_b"].requires_grad_(True)
        return terms


CUT = ContrastiveMethod("cut", "contrastive unpaired translation: one generator, PatchNCE",
                        PatchNCESettings, nce_identity=True, flip_equivariance=False,
                        saliency=False)
FASTCUT = ContrastiveMethod("fastcut", "CUT without the NCE identity term, λ_NCE 10, flip "
                            "equivariance", FastCUTSettings, nce_identity=False,
                            flip_equivariance=True, saliency=False)
UTOM_CUT = ContrastiveMethod("utom-cut", "CUT + UTOM's saliency constraint on G",
                             PatchNCESettings, nce_identity=True, flip_equivariance=False,
                             saliency=True)
