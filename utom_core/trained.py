"""Run directories: what training writes and what prediction, evaluation and resume read.

    RUN_DIR/config.json          the TrainConfig (every setting)
    RUN_DIR/run.json             task, domains, fitted normalisations, thresholds, inputs
    RUN_DIR/checkpoints/last.pt  full training state (resume)
    RUN_DIR/model.pt             generator weights (raw and EMA), their white balance, config
                                 and run meta (predict)
    RUN_DIR/log.jsonl            every loss term per iteration
    RUN_DIR/previews/            PNG previews during training
    RUN_DIR/val.jsonl            validation metrics (``utom train --val``), and val_curve.png
    RUN_DIR/model_best.pt        the model of the best validation score (as model.pt)

Every file is written through ``io.atomic`` (temporary sibling, fsync, rename), so a crash
never leaves a half-written file under one of these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from utom_core import __version__
from utom_core.checkpoints import load_torch
from utom_core.config import TrainConfig, describe_validation_error
from utom_core.domain import Domain, Normalisation
from utom_core.errors import InputError, UtomError, first_line
from utom_core.networks.base import Generator, GeneratorBuilder
from utom_core.task import Slicing

CONFIG_FILE = "config.json"
META_FILE = "run.json"
CHECKPOINT_FILE = "checkpoints/last.pt"
MODEL_FILE = "model.pt"
RUN_SUBDIR = "run"
"""Where ``utom run`` trains, inside its output folder."""
LOG_FILE = "log.jsonl"
TRAINING_PREVIEW_DIR = "previews"
BEST_MODEL_FILE = "model_best.pt"
VAL_LOG_FILE = "val.jsonl"
VAL_CURVE_FILE = "val_curve.png"
MODEL_FORMAT = "utom-model/1"

Direction = Literal["a2b", "b2a"]


class InputFile(BaseModel):
    """A training input as recorded: its absolute path and a fingerprint of its content, so a
    resumed run can tell that it would train on other files."""

    model_config = ConfigDict(extra="forbid")

    path: str
    size: int
    """Bytes (of every file in it, for a folder such as an OME-Zarr store)."""
    head_sha256: str
    """SHA-256 of the first MiB (of a folder: its file names, sizes and metadata files)."""


class RunMeta(BaseModel):
    """Everything besides the config that a run's models need to be used correctly."""

    model_config = ConfigDict(extra="forbid")

    task: str
    domain_a: Domain
    domain_b: Domain
    slicing: Slicing = Slicing.xy
    normalisation_a: Normalisation
    normalisation_b: Normalisation
    threshold_a: float
    """Domain A content threshold in raw units."""
    threshold_b: float
    content_fraction_a: float | None = None
    """Share of domain A's fitting sample its threshold marks as content (None: runs of
    earlier utoms)."""
    content_fraction_b: float | None = None
    threshold_source_a: str | None = None
    """Where domain A's threshold came from ("given", "triangle estimate; sparse content: …");
    None: runs of earlier utoms."""
    threshold_source_b: str | None = None
    range_note: str = ""
    """A doubt about a shared range (``fitting.range_note``), said after training."""
    inputs_a: list[InputFile | str] = []
    """Domain A's files; plain paths (as given, perhaps relative) in runs of earlier utoms."""
    inputs_b: list[InputFile | str] = []
    images_per_epoch: int
    """Resolved decay length of ρ, fixed at the start so a resumed run keeps its schedule."""
    utom_version: str = __version__


@dataclass
class TrainedModel:
    """A trained generator with the domains and normalisations needed to apply it."""

    generator: Generator
    source: Domain
    target: Domain
    source_norm: Normalisation
    target_norm: Normalisation
    source_threshold: float
    target_threshold: float
    slicing: Slicing
    task: str
    config: TrainConfig
    reverse: Generator | None = None
    """The generator of the other direction (target → source), loaded on request where the
    run holds one (two-sided methods): the fidelity map's cycle residual needs it."""
    output_gains: tuple[float, ...] | None = None
    """The model's white balance (``training.white_balance``): per channel, the factor its raw
    outputs take; None where none was fitted."""

    @property
    def output_norm(self) -> Normalisation:
        """How outputs map to raw units: ``target_norm`` with the white balance's gains
        (``target_norm`` alone judges outputs on the [-1, 1] scale, as training did)."""
        gains, norm = self.output_gains, self.target_norm
        if gains is None:
            return norm
        return norm.model_copy(update={
            "low": tuple(g * lo for g, lo in zip(gains, norm.low, strict=True)),
            "high": tuple(g * hi for g, hi in zip(gains, norm.high, strict=True))})


def _is_run_output(path: Path) -> bool:
    """A ``utom run`` output folder: its run directory inside holds a model."""
    return any((path / RUN_SUBDIR / name).is_file()
               for name in (MODEL_FILE, CHECKPOINT_FILE, BEST_MODEL_FILE))


def _not_a_run(path: Path) -> InputError:
    """Why ``path`` holds no model; a ``utom run`` output folder is named as one, with its
    run directory (the path a first-day user gives after ``utom run --out``)."""
    if _is_run_output(path):
        return InputError(path, f"is a utom run output; give its run directory "
                                f"{path / RUN_SUBDIR}")
    return InputError(path, f"not a run directory (no {MODEL_FILE})")


def _model_file(path: Path) -> Path:
    if path.is_dir():
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if (path / name).is_file():
                return path / name
        raise _not_a_run(path)
    return path


Checkpoint = Literal["run", "last", "best"]
"""Which of a run's models predicts: the one the run predicts with (its task's pick), its last,
or its best validation's (``utom predict --checkpoint``, ``utom export``, the Python API)."""


def chosen_model(path: Path, checkpoint: Checkpoint = "run") -> Path:
    """``--checkpoint``: ``run``, the model ``utom run`` predicts with (``run_pick``: the best
    validation's where the task picks it and the run validated, else the last; a model file
    is itself), ``last`` (``path`` as given), or ``best``, the model of its best validation
    score."""
    if checkpoint == "last" or (checkpoint == "run" and not path.is_dir()):
        return path
    if checkpoint == "run":
        return run_pick(path, load_run(path)[0].run_checkpoint)
    if not path.is_dir():
        raise InputError(path, "--checkpoint best takes a run directory")
    if not (path / BEST_MODEL_FILE).is_file():
        if _is_run_output(path):
            raise _not_a_run(path)
        raise InputError(path, f"has no {BEST_MODEL_FILE}: the run was trained without "
                               "validation (utom train --val)")
    return path / BEST_MODEL_FILE


def run_pick(run: Path, run_checkpoint: Literal["last", "best"]) -> Path:
    """The model ``utom run`` predicts with (its task's ``run_checkpoint``): the best
    validation's where asked for and written, else ``run`` itself (its last model)."""
    best = Path(run) / BEST_MODEL_FILE
    return best if run_checkpoint == "best" and best.is_file() else Path(run)


def load_run(path: Path) -> tuple[TrainConfig, RunMeta, dict[str, Any]]:
    """Config, run metadata and raw state of a run directory, model.pt or checkpoint file."""
    file = _model_file(Path(path))
    state = load_torch(file)
    try:
        return TrainConfig.saved(state["config"]), RunMeta(**state["meta"]), state
    except ValidationError as err:
        raise InputError(file, "checkpoint metadata is invalid ("
                         + describe_validation_error(err, "checkpoint") + ")") from None
    except TypeError as err:
        raise InputError(file, f"checkpoint metadata is invalid ({err})") from None


def _generator(path: Path, cfg: TrainConfig, state: dict[str, Any], key: str,
               channels: tuple[int, int], device: str, build_generator: GeneratorBuilder
               ) -> Generator:
    """The generator of weights ``key``, on ``device`` and frozen for inference."""
    generator = build_generator(cfg, *channels)
    try:
        generator.load_state_dict(state[key])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise InputError(_model_file(Path(path)), f"weights {key} do not fit its "
                         f"{cfg.generator} generator ({first_line(err)})") from None
    generator.to(device).eval().requires_grad_(False)
    return generator


def load_model(
    path: Path, direction: Direction = "a2b", ema: bool = True, device: str = "cpu", *,
    build_generator: GeneratorBuilder, reverse: bool = False,
) -> TrainedModel:
    """The generator for ``direction`` (EMA weights by default), ready for inference;
    ``build_generator`` (the registry's, from the caller) builds the architecture it names.
    With ``reverse``, the other direction's generator too where the run holds it (for the
    fidelity map's cycle residual; one-sided runs hold none, and load without it)."""
    cfg, meta, state = load_run(path)
    a2b = direction == "a2b"
    source, target = (meta.domain_a, meta.domain_b) if a2b else (meta.domain_b, meta.domain_a)
    prefix = "ema_" if ema and cfg.ema_decay > 0 else "g_"
    key, other = prefix + ("ab" if a2b else "ba"), prefix + ("ba" if a2b else "ab")
    if key not in state and not a2b:
        raise UtomError(f"{path}: the run holds no B → A generator (one-sided: method "
                        f"{cfg.method}, or one imported direction); it cannot predict "
                        "--direction b2a")
    channels = (source.channels, target.channels)
    generator = _generator(path, cfg, state, key, channels, device, build_generator)
    backward = (_generator(path, cfg, state, other, channels[::-1], device, build_generator)
                if reverse and other in state else None)
    norm_a, norm_b = meta.normalisation_a, meta.normalisation_b
    return TrainedModel(
        generator=generator,
        source=source,
        target=target,
        source_norm=norm_a if a2b else norm_b,
        target_norm=norm_b if a2b else norm_a,
        source_threshold=meta.threshold_a if a2b else meta.threshold_b,
        target_threshold=meta.threshold_b if a2b else meta.threshold_a,
        slicing=meta.slicing if a2b else Slicing.xy,
        task=meta.task,
        config=cfg,
        reverse=backward,
        output_gains=_gains(path, state, key, target.channels),
    )


def _gains(path: Path, state: dict[str, Any], key: str, channels: int
           ) -> tuple[float, ...] | None:
    """The white balance of weights ``key``, checked (None: the file has none for them)."""
    balance = state.get("white_balance", {})
    gains = balance.get(key) if isinstance(balance, dict) else "not a table"
    if gains is None:
        return None
    if (not isinstance(gains, list) or len(gains) != channels
            or not all(isinstance(g, float) and 0 < g < float("inf") for g in gains)):
        raise InputError(_model_file(Path(path)), f"white balance of {key} is not "
                         f"{channels} positive gains")
    return tuple(gains)


def gains_text(gains: Iterable[float]) -> str:
    """A white balance as the report and the zoo card print it: "×0.977, ×0.964, ×0.978"."""
    return ", ".join(f"×{gain:.3f}" for gain in gains)
