"""The method interface: what a training objective brings to utom's trainer.

A method names the networks it trains (a ``g_ab`` generator always, a ``g_ba`` where it is
two-sided, discriminators, projection heads, …), their optimisers, its loss terms and one
training step. The trainer owns everything else — tiles, learning-rate and ρ schedules, EMA
of the generators, checkpoints and bit-exact resume, DDP, validation, previews, logs — so a
method registered by a third-party package (``register_methods``) gets all of it unchanged.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from utom_core.config import TrainConfig, describe_validation_error
from utom_core.device import fused_adam
from utom_core.errors import UtomError
from utom_core.methods.losses import SaliencyPair, background_term, shift_term
from utom_core.methods.pool import ImagePool
from utom_core.networks.base import Generator

GeneratorFactory = Callable[[int, int], Generator]
"""Builds the run's registered generator architecture for (in, out) channels."""
SALIENCY_SETTINGS = frozenset({"rho0", "images_per_epoch", "rho_decay_fraction",
                               "saliency_variant"})
"""The core settings of the saliency term and its ρ schedule: unused by a method without it."""


@dataclass
class StepContext:
    """What one step may use besides the networks: the run's settings, the saliency
    operators, ρ now, the run's own random generator (checkpointed: draw from it, never from
    a fresh one), the image pools of generated A and B images, and autocast."""

    cfg: TrainConfig
    saliency: SaliencyPair
    rho: float
    rng: np.random.Generator
    pools: tuple[ImagePool, ImagePool]
    autocast: Callable[[], contextlib.AbstractContextManager]
    size_multiple: int
    """The trained generator's ``size_multiple``: the lattice its strided layers sample on."""
    background: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
    """A's and B's background colours (``data.background``) where ``lambda_background`` is
    on; None for a domain whose images show no background."""


def background_of(ctx: StepContext, side: int, real: torch.Tensor,
                  fake: torch.Tensor) -> torch.Tensor | None:
    """The background term of the generator from domain ``side`` (0: A → B, 1: B → A), or
    None where it is off or the target domain has no background colour."""
    colour = ctx.background[1 - side] if ctx.background is not None else None
    if colour is None:
        return None
    judge = ctx.saliency.real_a if side == 0 else ctx.saliency.real_b
    return background_term(judge, real, fake, colour)


def shift_term_on(cfg: TrainConfig, size_multiple: int) -> bool:
    """Whether a method that adds the shift term computes it: ``lambda_shift`` above 0 and a
    generator with a stride lattice (``size_multiple`` of 2 or more)."""
    return cfg.lambda_shift > 0 and size_multiple >= 2


def shift_of(ctx: StepContext, generator: nn.Module, real: torch.Tensor,
             fake: torch.Tensor) -> torch.Tensor | None:
    """The shift term of ``generator`` (``losses.shift_term``; ``fake`` is its output for
    ``real``), or None where ``lambda_shift`` is 0 or the generator has no stride lattice."""
    if not shift_term_on(ctx.cfg, ctx.size_multiple):
        return None
    return shift_term(generator, real, fake, ctx.rng, ctx.size_multiple)


@dataclass
class StepNetworks:
    """The method's modules as a step calls them: ``trained`` (DDP across ranks, compiled)
    for the module being updated, ``plain`` (compiled only) for a frozen module judging
    another's output — a DDP forward whose backward never reaches its weights would stall
    the next step."""

    trained: dict[str, nn.Module]
    plain: dict[str, nn.Module]


class Method:
    """A registered method as listings, the bench and the workflow see it. Subclasses set
    these as class attributes; an instance may set them by keyword."""

    name: str = ""
    summary: str = ""
    two_sided: bool = True
    """Trains a B → A generator too (``utom predict --direction b2a``)."""
    paired: bool = False
    """Trains on aligned pairs (the supervised ceiling, ``training.supervised``): ``utom
    run`` on a task's demo pairs only; the unpaired methods subclass ``TrainingMethod``."""
    source: str = ""
    """Where the method and its defaults come from (paper, code), for the docs and listings."""
    settings_model: type[BaseModel] | None = None
    """The method's own settings: a pydantic model (``extra="forbid"``, a default for every
    field) that ``TrainConfig.method_settings`` is validated by; None: the method has none."""
    ignores: frozenset[str] = frozenset()
    """Core settings (``TrainConfig`` fields) the method never uses; see ``unused_settings``."""
    setting_notes: Mapping[str, str] = {}
    """What a core setting does in this method where its name says otherwise (the report)."""

    def __init__(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no attribute {key!r}")
            setattr(self, key, value)

    def not_applicable(self, cfg: TrainConfig, channels: tuple[int, int]) -> str | None:
        """Why the method cannot train a task mapping ``channels`` (A, B) under ``cfg``, or
        None; ``utom bench`` reports it as "not applicable", training refuses it."""
        return None

    def unused_settings(self, cfg: TrainConfig) -> frozenset[str]:
        """The core settings the method ignores under ``cfg`` (``ignores``, and those ``cfg``
        turns off), so that the report leaves them out and the log has no ρ where "rho0" is
        among them."""
        return self.ignores

    def settings(self, cfg: TrainConfig, source: str = "settings") -> BaseModel | None:
        """``cfg.method_settings`` as ``settings_model`` reads them, defaults filled in;
        validated strictly, as every setting a user writes, and refused in one line naming
        ``source`` and the key."""
        given = cfg.method_settings
        if self.settings_model is None:
            if given:
                raise UtomError(f"{source}: method_settings: method {self.name} has no settings "
                                f"of its own (given: {', '.join(sorted(given))})")
            return None
        try:
            return self.settings_model.model_validate_json(json.dumps(given), strict=True)
        except ValidationError as err:
            raise UtomError(describe_validation_error(err, source, "method_settings")) from None

    def with_settings(self, cfg: TrainConfig, source: str = "settings") -> TrainConfig:
        """``cfg`` with every one of the method's settings written out (defaults included), so
        that the run records them; wrong ones are refused as ``settings`` says."""
        settings = self.settings(cfg, source)
        complete = settings.model_dump(mode="json") if settings is not None else {}
        return cfg.model_copy(update={"method_settings": complete})


class TrainingMethod(Method, ABC):
    """An unpaired objective the trainer runs; registered instances are shared by every run,
    so per-run state lives in the modules ``build`` returns."""

    loss_terms: tuple[str, ...]
    """The terms ``step`` returns, in log order; "generator" is the total G objective. Only
    those the method has: the log, the progress line and the loss curves show each."""

    @abstractmethod
    def build(self, cfg: TrainConfig, channels: tuple[int, int],
              generator: GeneratorFactory) -> dict[str, nn.Module]:
        """Every module the method trains, by checkpoint name (``g_ab`` always; ``g_ba`` if
        two-sided); called once with the torch seed set, so weights repeat per seed."""

    @abstractmethod
    def optimisers(self, modules: dict[str, nn.Module],
                   cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by checkpoint name; the trainer sets their learning rate."""

    @abstractmethod
    def step(self, ctx: StepContext, nets: StepNetworks, optimisers: dict[str, Any],
             real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update of every module; returns ``loss_terms`` (tensors, not synchronised)."""


def adam(modules: dict[str, nn.Module], cfg: TrainConfig, *names: str) -> torch.optim.Optimizer:
    """One Adam (the run's lr and betas) over the parameters of the named modules, in order:
    the fused kernel where the parameters' device has one (``fused_adam``), else multi-tensor.
    A resumed run continues with the kind its checkpoint saved (Adam's settings are restored
    with its state)."""
    params = [p for name in names for p in modules[name].parameters()]
    kind = {"fused": True} if fused_adam(params[0].device) else {"foreach": True}
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, **kind)


def runnable_here(*optimisers: torch.optim.Optimizer) -> None:
    """Resumed Adams keep the kind they saved, unless that is the fused kernel and this torch
    has none for the device (a checkpoint of CUDA or of torch >= 2.4 resumed on an older
    torch's CPU): then they continue multi-tensor."""
    for group in (group for optimiser in optimisers for group in optimiser.param_groups):
        if group.get("fused") and not fused_adam(group["params"][0].device):
            group["fused"], group["foreach"] = None, True
