"""``train()``: a new run or a resumed one, from directory checks to the last checkpoint.

Under torchrun every rank runs this: each checks what it reads, rank 0 alone writes (after a
barrier, so no rank checks a directory rank 0 has begun to change).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from utom_core import threads, trained
from utom_core.config import RESUME_SETTINGS, TrainConfig
from utom_core.console import console
from utom_core.errors import InputError, UtomError, first_line
from utom_core.io import FormatTable
from utom_core.io.atomic import write_json
from utom_core.methods import Method
from utom_core.networks.base import GeneratorBuilder
from utom_core.run_folders import check_run_dir, prepare_run_dir
from utom_core.run_output import relocated
from utom_core.task import Task
from utom_core.training import distributed
from utom_core.training.meta import input_records, recorded_inputs, same_inputs
from utom_core.training.runlog import truncate_log
from utom_core.training.schedules import resumed_decay
from utom_core.training.time_plan import plan_by_time
from utom_core.training.trainer import Trainer, TrainResult
from utom_core.training.validation import ValPair


def train(
    task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path] | None = None,
    b_paths: list[Path] | None = None, *, method: Method, build_generator: GeneratorBuilder,
    formats: FormatTable | None = None, resume: bool = False, overwrite: bool = False,
    iterations: int | None = None, changes: dict[str, Any] | None = None,
    stop_at: int | None = None, show_progress: bool = True, val: list[ValPair] | None = None,
) -> TrainResult:
    """Train a new run in ``run_dir`` or resume the one there.

    ``method`` (the run's: on resume, the one its saved settings name) and ``build_generator``
    come resolved from the caller; ``formats`` opens the images (None: io's built-ins). On
    resume, ``iterations`` sets a new total and ``changes`` any of RESUME_SETTINGS (said in
    one line); ``stop_at`` ends this call early at that iteration with a checkpoint, as an
    interruption would. ``val``: validation images and their references (a resumed run keeps
    the ones it started with). A new run with ``cfg.minutes`` first plans its iterations to
    fill them (``time_plan``).
    """
    run_dir = Path(run_dir)
    trainer_of = partial(Trainer, method=method, build_generator=build_generator,
                         formats=formats)
    check_run_dir(run_dir, resume, overwrite, inputs=[*(a_paths or []), *(b_paths or [])],
                  resumable=True)
    if resume:
        trainer = _resumed(trainer_of, task, run_dir, a_paths, b_paths, iterations, changes,
                           val)
    else:
        if not a_paths or not b_paths:
            raise UtomError("training needs images for both domains (--a and --b)")
        # inputs, settings and networks are checked before the directory is created (or an
        # old run replaced): a refused run changes nothing on disk
        distributed.join(cfg.device)
        trainer = trainer_of(task, cfg, run_dir, a_paths, b_paths, val=val)
        if cfg.minutes is not None:
            plan = plan_by_time(trainer, cfg, cfg.minutes)
            if show_progress and trainer.ranks.main:
                console.print(f"training: {plan}" + (f"; {threads.applied()}"
                              if threads.applied() else ""), soft_wrap=True, markup=False)
    distributed.barrier()
    if trainer.ranks.main:
        prepare_run_dir(run_dir, resume, overwrite)
        if resume:
            truncate_log(run_dir, trainer.iteration)
            truncate_log(run_dir, trainer.iteration, trained.VAL_LOG_FILE)
            if trainer.validator is not None:
                trainer.validator.resume(run_dir)
        write_json(run_dir / trained.CONFIG_FILE, trainer.cfg.model_dump(mode="json"))
        write_json(run_dir / trained.META_FILE, trainer.meta.model_dump(mode="json"))
    with distributed.peer_failures(lambda: _kept(trainer)):
        result = trainer.fit(stop_at=stop_at, show_progress=show_progress and trainer.ranks.main)
    distributed.leave_together()
    return result


def _resumed(trainer_of: Callable[..., Trainer], task: Task, run_dir: Path,
             a_paths: list[Path] | None, b_paths: list[Path] | None, iterations: int | None,
             changes: dict[str, Any] | None, given_val: list[ValPair] | None) -> Trainer:
    """The trainer of the run in ``run_dir``, at its checkpoint (nothing is written yet).
    Images given again must be the ones it trained and validates on (their fingerprints)."""
    checkpoint = run_dir / trained.CHECKPOINT_FILE
    saved, meta, state = trained.load_run(checkpoint)
    if meta.task != task.name:
        raise UtomError(f"{run_dir}: was trained for task {meta.task!r}, not {task.name!r}")
    before = saved
    update = {**(changes or {}), **({} if iterations is None else {"iterations": iterations})}
    saved = _resumed_config(saved, update)
    distributed.join(saved.device)
    moved = relocated(run_dir)  # a run utom kept aside after an interrupted `utom run`
    val = [(Path(moved(p)), None if r is None else Path(moved(r)))
           for p, r in state.get("validation", [])]
    if given_val and _absolute(given_val) != _absolute(val):
        raise UtomError("--val: a resumed run validates on the images it started with")
    inputs_a, inputs_b = ([record if isinstance(record, str) else record.model_copy(
        update={"path": moved(record.path)}) for record in records]
        for records in (meta.inputs_a, meta.inputs_b))
    trainer = trainer_of(task, saved, run_dir, a_paths or recorded_inputs(inputs_a, "--a"),
                         b_paths or recorded_inputs(inputs_b, "--b"), meta=meta, val=val)
    found = input_records(trainer.images_a, trainer.images_b)
    same_inputs(meta, found)
    trainer.meta = meta.model_copy(update=found)
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise InputError(checkpoint, f"cannot resume from it ({first_line(err)})") from None
    if trainer.iteration > trainer.cfg.iterations:
        raise UtomError(f"iterations {trainer.cfg.iterations}: the run is already at "
                        f"iteration {trainer.iteration}; give a larger total (--iterations)")
    if update:
        console.print(f"{run_dir}: resuming with " + ", ".join(
            f"{key} {value}" + (f" (was {was})" if (was := getattr(before, key)) != value else "")
            for key, value in sorted(update.items()))
            + "; every other setting is the run's own", soft_wrap=True)
    if trainer.iteration == saved.iterations and "iterations" not in update:
        console.print(f"{run_dir}: the run has finished its {saved.iterations} iterations; to "
                      "train longer, resume with --iterations N, N above that"
                      + (" (and without --minutes or --hours)" if saved.minutes else ""),
                      soft_wrap=True)
    if saved.iterations != before.iterations:  # the LR continues its decay; never restarts
        trainer.lr_resumed = resumed_decay(trainer.iteration, before.iterations,
                                           saved.lr_decay_start, trainer.lr_resumed)
    return trainer


def _absolute(pairs: list[ValPair]) -> list[tuple[Path, Path | None]]:
    return [(Path(p).absolute(), None if r is None else Path(r).absolute()) for p, r in pairs]


def _kept(trainer: Trainer) -> str:
    """What an interrupted run leaves to resume from."""
    kept = (f"the checkpoint of iteration {trainer.saved_at} is intact (--resume)"
            if trainer.saved_at is not None else "no checkpoint was written yet")
    return f"training stopped at iteration {trainer.iteration}; {kept}"


def _resumed_config(saved: TrainConfig, update: dict[str, Any]) -> TrainConfig:
    """The saved config with the few settings a resume may change (refused otherwise)."""
    fixed = sorted(set(update) - RESUME_SETTINGS)
    if fixed:
        raise UtomError(f"{fixed[0]}: a resumed run keeps the settings it was trained with")
    return TrainConfig(**{**saved.model_dump(), **update})
