"""The third-party method of docs/plugins.md ("Write a method"), registered in-process."""

from __future__ import annotations

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from utom_core import plugins
from utom_core.hookspecs import hookimpl
from utom_core.methods import TrainingMethod
from utom_core.methods.losses import discriminator_loss, l1, lsgan
from utom_core.networks import PatchGAN


class L1Settings(BaseModel):
    """The toy method's own settings (``--set method_settings.lambda_l1=…``)."""

    model_config = ConfigDict(extra="forbid")

    lambda_l1: float = Field(10.0, ge=0)
    """Weight of the L1 term."""


class L1ToInput(TrainingMethod):
    """The example of docs/plugins.md: one generator kept near its input by L1, pushed
    towards B by a PatchGAN."""

    name, summary, loss_terms, two_sided = "toy-l1", "LSGAN + L1 to the input", (
        "gan_ab", "l1_a", "generator", "disc_b"), False
    settings_model = L1Settings

    def build(self, cfg, channels, generator):
        return {"g_ab": generator(*channels), "d_b": PatchGAN(channels[1], cfg.ndf, cfg.d_layers)}

    def optimisers(self, modules, cfg):
        return {name: torch.optim.Adam(modules[net].parameters(), lr=cfg.lr, betas=cfg.betas)
                for name, net in (("opt_g", "g_ab"), ("opt_d", "d_b"))}

    def step(self, ctx, nets, optimisers, real_a, real_b):
        with ctx.autocast():
            fake_b = nets.trained["g_ab"](real_a)
            terms = {"gan_ab": lsgan(nets.plain["d_b"](fake_b), True), "l1_a": l1(fake_b, real_a)}
            terms["generator"] = terms["gan_ab"] + self.settings(ctx.cfg).lambda_l1 * terms["l1_a"]
        optimisers["opt_g"].zero_grad()
        terms["generator"].backward()
        optimisers["opt_g"].step()
        terms["disc_b"] = discriminator_loss(nets.trained["d_b"](real_b),
                                             nets.trained["d_b"](fake_b.detach()))
        optimisers["opt_d"].zero_grad()
        terms["disc_b"].backward()
        optimisers["opt_d"].step()
        return terms


class ToyMethodPlugin:
    @hookimpl
    def register_methods(self, register):
        register(L1ToInput())


@pytest.fixture
def toy_method():
    plugin = ToyMethodPlugin()
    plugin.__name__ = "toy_method_plugin"
    plugins.add_plugin(plugin)
    yield
    plugins.remove_plugin(plugin)
