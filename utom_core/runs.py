"""Run directories: what training writes and what prediction, evaluation and resume read.

    RUN_DIR/config.json          the TrainConfig (every setting)
    RUN_DIR/run.json             task, domains, fitted normalisations, thresholds, inputs
    RUN_DIR/checkpoints/last.pt  full training state (resume)
    RUN_DIR/model.pt             generator weights (raw and EMA) + config + run meta (predict)
    RUN_DIR/log.jsonl            every loss term per iteration
    RUN_DIR/previews/            PNG previews during training

Every file is written to a temporary sibling and renamed, so a crash never leaves a
half-written file under one of these names.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from utom_core import __version__
from utom_core.config import TrainConfig, describe_validation_error
from utom_core.domain import Domain, Normalisation
from utom_core.errors import InputError, UtomError
from utom_core.networks.base import Generator
from utom_core.task import Slicing

CONFIG_FILE = "config.json"
META_FILE = "run.json"
CHECKPOINT_FILE = "checkpoints/last.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "log.jsonl"
PREVIEW_DIR = "previews"
MODEL_FORMAT = "utom-model/1"
TEMP_SUFFIX = ".tmp"
"""Suffix of the hidden temp siblings files are written to before being renamed into place."""
STALL_ENV = "UTOM_TEST_STALL_CHECKPOINT_S"
"""Test hook: seconds to pause between writing a checkpoint and renaming it into place."""

Direction = Literal["a2b", "b2a"]


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
    inputs_a: list[str] = []
    inputs_b: list[str] = []
    images_per_epoch: int
    """Resolved decay length of ρ, fixed at the start so a resumed run keeps its schedule."""
    utom_version: str = __version__


def atomic_write_bytes(path: Path, write) -> None:
    """Write through ``write(file)`` into a temp sibling, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide runs from the group
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        stall = float(os.environ.get(STALL_ENV, "0") or 0)
        if stall > 0 and path.suffix == ".pt":
            time.sleep(stall)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete temp files a killed process left behind (never read: only renamed files are)."""
    stale = [p for folder in (run_dir, run_dir / "checkpoints") if folder.is_dir()
             for p in folder.glob(f".*{TEMP_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def atomic_torch_save(obj: Any, path: Path) -> None:
    try:
        atomic_write_bytes(path, lambda handle: torch.save(obj, handle))
    except OSError as err:
        raise UtomError(f"{path}: cannot write ({err.strerror or err}); earlier files are intact") \
            from None


def _refused_global(err: Exception) -> str | None:
    """The Python object a refused checkpoint names (``posix.system``), if that was the cause."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return found.group(1) if found else None


def _unpickling_detail(err: Exception) -> str:
    """The informative part of torch's weights-only refusal (not its advice to turn it off)."""
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(err))
    if found:
        return found.group(1).strip()
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation", "(")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith(skip)]
    return detail[0] if detail else type(err).__name__


def load_torch(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely: tensors and plain data only, never arbitrary code."""
    try:
        with warnings.catch_warnings():  # e.g. torch's note on the pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such checkpoint") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a checkpoint file") from None
    except pickle.UnpicklingError as err:  # what torch's weights-only unpickler raises
        name = _refused_global(err)
        if name:
            raise InputError(path, f"refused: it names the Python object {name}, and loading "
                                   "anything but tensors and plain data could run code") from None
        raise InputError(path, f"not a loadable utom checkpoint ({_unpickling_detail(err)[:160]})"
                         ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, f"not a loadable utom checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or "config" not in state or "meta" not in state:
        raise InputError(path, "not a utom checkpoint (missing config or run metadata)")
    return state


def check_run_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to reuse a run directory unless resuming or overwriting (changes nothing)."""
    if resume:
        if not (path / CHECKPOINT_FILE).is_file():
            raise UtomError(f"{path}: nothing to resume (no {CHECKPOINT_FILE})")
        return
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise UtomError(f"{path}: already exists; use --resume to continue it or "
                            "--overwrite to replace it")
        if not (path / META_FILE).is_file() and not (path / CONFIG_FILE).is_file():
            raise UtomError(f"{path}: --overwrite refused: not a utom run directory")


def prepare_run_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Create a fresh run directory; refuse to reuse one unless resuming or overwriting.

    Resuming removes the temp files a killed run may have left (they are never read)."""
    check_run_dir(path, resume, overwrite)
    if resume:
        remove_stale_temporaries(path)
        return
    try:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UtomError(f"{path}: cannot create the run directory ({err.strerror or err})") \
            from None


def build_generator(cfg: TrainConfig, in_channels: int, out_channels: int) -> Generator:
    """A generator of the configured, registered architecture."""
    from utom_core.plugins import get_registry

    factories = get_registry().generators
    if cfg.generator not in factories:
        raise UtomError(f"unknown generator {cfg.generator!r} (registered: "
                        f"{', '.join(sorted(factories))})")
    if cfg.residual and in_channels != out_channels:
        raise UtomError(f"residual generators need equal channel counts, not {in_channels} → "
                        f"{out_channels}; remove residual=true")
    return factories[cfg.generator](in_channels, out_channels, cfg)


@dataclass
class Predictor:
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


def _model_file(path: Path) -> Path:
    if path.is_dir():
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if (path / name).is_file():
                return path / name
        raise InputError(path, f"not a run directory (no {MODEL_FILE})")
    return path


def load_run(path: Path) -> tuple[TrainConfig, RunMeta, dict[str, Any]]:
    """Config, run metadata and raw state of a run directory, model.pt or checkpoint file."""
    file = _model_file(Path(path))
    state = load_torch(file)
    try:
        return TrainConfig(**state["config"]), RunMeta(**state["meta"]), state
    except ValidationError as err:
        raise InputError(file, "checkpoint metadata is invalid ("
                         + describe_validation_error(err, "checkpoint") + ")") from None
    except TypeError as err:
        raise InputError(file, f"checkpoint metadata is invalid ({err})") from None


def load_predictor(
    path: Path, direction: Direction = "a2b", ema: bool = True, device: str = "cpu"
) -> Predictor:
    """The generator for ``direction`` (EMA weights by default), ready for inference."""
    cfg, meta, state = load_run(path)
    a2b = direction == "a2b"
    source, target = (meta.domain_a, meta.domain_b) if a2b else (meta.domain_b, meta.domain_a)
    generator = build_generator(cfg, source.channels, target.channels)
    key = ("ema_" if ema and cfg.ema_decay > 0 else "g_") + ("ab" if a2b else "ba")
    try:
        generator.load_state_dict(state[key])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(_model_file(Path(path)), f"weights {key} do not fit its "
                         f"{cfg.generator} generator ({first[:200]})") from None
    generator.to(device).eval().requires_grad_(False)
    norm_a, norm_b = meta.normalisation_a, meta.normalisation_b
    return Predictor(
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
    )


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
