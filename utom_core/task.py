"""Task descriptions: the bundle a plugin registers — two domains, defaults, data and metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from utom_core.config import BUDGETS, Budget, TrainConfig
from utom_core.domain import Domain


class Slicing(StrEnum):
    """How a 2D network sees volumes: XY planes, or XZ and YZ planes (isotropic restoration)."""

    xy = "xy"
    xz_yz = "xz-yz"


class TaskData(BaseModel):
    """Files a task prepared for one run: unpaired training sets, held-out tests, references."""

    model_config = ConfigDict(extra="forbid")

    a: list[Path]
    """Domain A training images."""
    b: list[Path]
    """Domain B training images (never aligned pairs of ``a``)."""
    test: list[Path] = []
    """Held-out domain A images to predict."""
    reference: list[Path | None] = []
    """Ground truth or reference per test image (None where there is none)."""
    notes: list[str] = []
    """What the data is and how it was made (shown in the report)."""
    pairs: list[tuple[Path, Path]] = []
    """Aligned (domain A image, its domain B ground truth) pairs from the training region, for
    the supervised ceiling only; unpaired methods never see them. Empty: no ceiling."""


DataBuilder = Callable[[Path, int], TaskData]
"""(work folder, seed) → TaskData: builds the task's data into the work folder."""

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,39}$")


class Task(BaseModel):
    """A registered transformation task."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    """Command-line name: lowercase letters, digits and dashes."""
    summary: str
    """One line shown by ``utom tasks``."""
    domain_a: Domain
    """Source domain (what the user has)."""
    domain_b: Domain
    """Target domain (what the user wants)."""
    training: dict[str, Any] = {}
    """TrainConfig defaults of this task (any budget)."""
    budgets: dict[Budget, dict[str, Any]] = {}
    """Per-budget TrainConfig overrides on top of the generic presets."""
    slicing: Slicing = Slicing.xy
    """How volumes are cut into 2D images for the networks."""
    demo_data: DataBuilder | None = None
    """Builds the task's bundled demo data (offline); None: the task needs --a/--b."""
    evaluators: list[str] = Field(default_factory=lambda: ["content"])
    """Names of registered evaluators applied to predictions."""
    plugin: str = ""
    """Distribution that registered the task (filled in by the registry)."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"task name {name!r} must match {NAME_PATTERN.pattern}")
        return name

    @model_validator(mode="after")
    def _valid_training_keys(self) -> Task:
        for layer in (self.training, *self.budgets.values()):
            try:
                TrainConfig(**layer)
            except ValidationError as err:
                raise ValueError(f"invalid training defaults: {err.errors()[0]['msg']}") from None
        return self

    def cut_axes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Planes each domain's volumes are cut into: XZ/YZ for A in isotropic restoration."""
        if self.slicing is Slicing.xz_yz:
            return ("y", "x"), ("z",)
        return ("z",), ("z",)

    def config_layers(self, budget: Budget) -> list[dict[str, Any]]:
        """Setting layers from generic preset to task-specific (later wins)."""
        return [BUDGETS[budget], self.training, self.budgets.get(budget, {})]
