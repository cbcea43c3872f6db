"""A run directory around a generator of the authors' code, used like any trained run.

Their images are 8-bit and normalised as ``x / 127.5 - 1``; the run records exactly that (both
domains uint8, range 0–255), so ``utom predict`` reads and writes the intensities their test
script does. Only the imported direction has a generator; thresholds are in 8-bit units.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.domain import Domain, Normalisation, PixelType
from utom_core.errors import DiskError, InputError, UtomError
from utom_core.export.authors import Layout, load_authors_generator
from utom_core.io.atomic import move_into_place, remove, temporary_sibling, write_json
from utom_core.networks.base import GeneratorBuilder
from utom_core.run_folders import check_run_dir, prepare_run_dir
from utom_core.task import Task

EIGHT_BIT = PixelType.uint8


def eight_bit(domain: Domain) -> tuple[Domain, Normalisation]:
    """The domain as their code saw it (8-bit) and their normalisation, 0 → -1, 255 → +1."""
    normalisation = Normalisation(low=(0.0,) * domain.channels, high=(255.0,) * domain.channels,
                                  dtype=EIGHT_BIT)
    return domain.model_copy(update={"dtype": EIGHT_BIT}), normalisation


THEIR_DEFAULTS = {"--threshold-a": 70.0, "--threshold-b": 220.0}
"""Their code's defaults (``threshold_A 70``, ``threshold_B 220``), what a generator was trained
with unless told otherwise."""


def threshold(given: float | None, domain: Domain, option: str) -> float:
    """A domain's threshold in 8-bit units: given, else the task's where it is an 8-bit one,
    else their code's default (prediction does not use it; it is recorded with the run)."""
    if given is not None:
        if not math.isfinite(given) or not 0 <= given <= 255:
            raise UtomError(f"{option} {given}: an 8-bit threshold lies in 0–255")
        return given
    if domain.dtype is EIGHT_BIT and domain.threshold is not None:
        return domain.threshold
    return THEIR_DEFAULTS[option]


def _check_channels(layout: Layout, source: Domain, target: Domain, path: Path,
                    direction: str) -> None:
    if (layout.in_channels, layout.out_channels) != (source.channels, target.channels):
        raise InputError(path, f"its generator maps {layout.in_channels} → {layout.out_channels}"
                               f" channel(s); {direction} of the task needs {source.channels} → "
                               f"{target.channels} ({source.name} → {target.name})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_generator(weights: Path, task: Task, out: Path, direction: trained.Direction,
                     threshold_a: float | None, threshold_b: float | None, *,
                     build_generator: GeneratorBuilder, overwrite: bool = False) -> Layout:
    """Write run directory ``out`` holding the generator in ``weights`` for ``direction``
    (rebuilt by ``build_generator``); complete or not at all (built in a hidden sibling, then
    renamed into place)."""
    thr_a = threshold(threshold_a, task.domain_a, "--threshold-a")
    thr_b = threshold(threshold_b, task.domain_b, "--threshold-b")
    check_run_dir(out, resume=False, overwrite=overwrite, inputs=[weights])
    layout, generator = load_authors_generator(weights, build_generator)
    (domain_a, norm_a), (domain_b, norm_b) = eight_bit(task.domain_a), eight_bit(task.domain_b)
    a2b = direction == "a2b"
    _check_channels(layout, *((domain_a, domain_b) if a2b else (domain_b, domain_a)), weights,
                    direction)
    cfg = TrainConfig(**layout.settings())
    meta = trained.RunMeta(task=task.name, domain_a=domain_a, domain_b=domain_b,
                        slicing=task.slicing, normalisation_a=norm_a, normalisation_b=norm_b,
                        threshold_a=thr_a, threshold_b=thr_b, images_per_epoch=1)
    state = dict(format=trained.MODEL_FORMAT, config=cfg.model_dump(mode="json"),
                 meta=meta.model_dump(mode="json"), iteration=0,
                 imported=dict(file=str(weights.resolve()), sha256=_sha256(weights),
                               layout=layout.describe(), direction=direction))
    state["g_ab" if a2b else "g_ba"] = generator.state_dict()
    _write_run(out, cfg, meta, state)
    return layout


def _write_run(out: Path, cfg: TrainConfig, meta: trained.RunMeta, state: dict) -> None:
    partial = temporary_sibling(out)
    try:
        prepare_run_dir(partial, resume=False, overwrite=False)
        write_json(partial / trained.CONFIG_FILE, cfg.model_dump(mode="json"))
        write_json(partial / trained.META_FILE, meta.model_dump(mode="json"))
        save_torch(state, partial / trained.MODEL_FILE)
        # check_run_dir allowed what is at ``out``: nothing, an empty folder, or (with
        # --overwrite) a run directory utom wrote
        move_into_place(partial, out, replace=out.exists())
    except OSError as err:
        raise DiskError.refused(err, out, "cannot write the run directory",
                                "nothing was written") from None
    finally:
        remove(partial)
