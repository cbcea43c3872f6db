"""metrics.json: the record of one ``utom run``, as a typed model.

``utom run`` writes it (``workflow.end_to_end``); the report, ``utom bench`` and the model
package's card read it back through ``RunRecord``, never by string keys. Its JSON keeps the
keys other tools read; ``schema_version`` says which layout a file has (records written
before it existed read as version 1).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from utom_core import __version__
from utom_core.config import TrainConfig
from utom_core.io.atomic import write_json

SCHEMA_VERSION = 1
"""Layout of metrics.json that this utom writes."""

T = TypeVar("T")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerDomain(_Part, Generic[T]):
    """One value for each domain."""

    a: T
    """Domain A's (the source)."""
    b: T
    """Domain B's (the target)."""


class FidelityRecord(_Part):
    """Where a prediction should not be trusted (``inference.fidelity``)."""

    path: str
    """The fidelity map beside the prediction."""
    level: float
    """The level ``above`` counts from."""
    above: float
    """Share of the image's pixels whose fidelity exceeds ``level``."""


class ImageRow(_Part):
    """One test image: where it and its prediction are, and how the prediction scored."""

    test: str
    """The test image, as given."""
    reference: str | None
    """Its reference in domain B, where there is one."""
    prediction: str
    """The prediction utom wrote."""
    metrics: dict[str, float]
    """Every evaluator's scores (``<name>_input``: the untransformed input's, the floor)."""
    notes: list[str] = []
    """What the evaluation said about the image (a metric skipped, and why)."""
    fidelity: FidelityRecord | None = None
    """Its fidelity map (None: not written, or a record from before fidelity maps)."""


class _Used(_Part):
    """What any model that predicted the tests says of itself."""

    white_balance: list[float] | None = None
    """The gains its outputs took per channel (``training.white_balance``; None: none)."""


class LastModel(_Used):
    """The tests were predicted with the run's last model."""

    model: Literal["last"]
    iteration: int
    """The iteration the run ended at."""


KEEPING_RULES = {"content_kept": "the latest model (after a validation since the kept one fell "
                                 "below the tolerance, a later one only if at least as close)",
                 "resolution": "the finest resolution",
                 "anisotropy": "the anisotropy closest to 1",
                 "target_colour": "the colours closest to the target domain's images"}
"""The rules that keep a model among those within a content-IoU tolerance
(``training.model_choice``), and what each keeps."""


class BestModel(_Used):
    """The tests were predicted with ``model_best.pt`` (``run_checkpoint = "best"``)."""

    model: Literal["best"]
    iteration: int
    """The iteration of the best validation."""
    metric: str
    """The validation score that picked it."""
    score: float
    """Its value then."""
    content_iou: float | None = None
    """A gain measure's pick (``training.model_choice``): its content IoU, the best content
    IoU of the run's validations, and how far below that a model could be and still be kept
    (None: picked by ``score`` alone)."""
    best_content_iou: float | None = None
    tolerance: float | None = None
    lateral_kept: bool | None = None
    """``anisotropy``'s pick: whether its lateral resolution was within the rule's tolerance
    of its input's (False: no validated model's was, and this one was kept anyway)."""


PredictedWith = Annotated[LastModel | BestModel, Field(discriminator="model")]


class Box(_Part):
    """A rectangle of the held-out image, in pixels (start, stop)."""

    rows: tuple[int, int]
    columns: tuple[int, int]


class HeldOutRegion(Box):
    """A region held out as a test image."""

    region: str
    """As the user gave it (``--test-region``)."""


class HeldOutRecord(_Part):
    """How ``--test-region`` cut the one --a image into training and test pieces."""

    image: str
    """The --a image that was cut."""
    gap: int
    """Guard gap in pixels between test and training pieces."""
    tests: list[HeldOutRegion]
    training: list[Box]
    """The pieces trained on."""
    left_out: list[Box]
    """Pieces too small to train on."""


class Versions(_Part):
    """The software that made the record."""

    utom: str
    torch: str
    numpy: str
    python: str

    @classmethod
    def current(cls) -> Versions:
        import numpy as np
        import torch

        return cls(utom=__version__, torch=torch.__version__, numpy=np.__version__,
                   python=platform.python_version())


class Machine(_Part):
    """The machine the run ran on (timings mean little without it)."""

    platform: str
    processor: str
    cpus: int | None
    threads: int | None = None
    """torch's CPU threads (``utom_core.threads``; absent in records before they were kept)."""

    @classmethod
    def current(cls) -> Machine:
        import torch

        return cls(platform=platform.platform(), processor=platform.machine(),
                   cpus=os.cpu_count(), threads=torch.get_num_threads())


class RunRecord(_Part):
    """What one ``utom run`` did and how well: OUT/metrics.json."""

    schema_version: int = SCHEMA_VERSION
    """Layout of this record (absent, in records of utom before it was added: 1)."""
    task: str
    """The task's registered name."""
    plugin: str
    """The distribution that registered the task."""
    method: str
    """The training method."""
    budget: str
    """The budget preset the settings started from."""
    seed: int
    iterations: int
    """Iterations the run trained."""
    wall_seconds: float
    """Data, training, prediction and evaluation together."""
    train_seconds: float
    """Data and training."""
    metrics: dict[str, float]
    """Each metric's mean over the test images."""
    images: list[ImageRow]
    notes: list[str]
    """Where the data came from (demo, user files, held-out regions)."""
    config: TrainConfig
    """Every setting of the run."""
    thresholds: PerDomain[float]
    """Content thresholds in raw units."""
    content_fractions: PerDomain[float | None]
    """Share of training pixels each threshold marks as content (None: not fitted)."""
    threshold_sources: PerDomain[str | None]
    """Where each threshold came from (the task, the user, an estimate)."""
    range_note: str = ""
    """Why the fitted shared range looks doubtful, where it does."""
    predicted_with: PredictedWith
    """Which model predicted the tests."""
    held_out: HeldOutRecord | None = None
    """The --test-region cut, where there was one."""
    views: int | None = None
    """Flips and rotations the tests were predicted under (None: records before views, 1)."""
    versions: Versions
    machine: Machine

    @field_validator("config", mode="before")
    @classmethod
    def _saved_config(cls, config: Any) -> Any:
        return TrainConfig.saved(config) if isinstance(config, dict) else config

    def write(self, path: Path) -> None:
        """Write atomically as JSON (the keys other tools read, plus ``schema_version``)."""
        write_json(path, self.model_dump(mode="json"))

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record in ``path``; None where it is missing, unreadable or not a record."""
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except (OSError, ValidationError):
            return None
