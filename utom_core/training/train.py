"""``train()``: a new run or a resumed one, from directory checks to the last checkpoint."""

from __future__ import annotations

from pathlib import Path

from utom_core import runs
from utom_core.config import TrainConfig
from utom_core.errors import InputError, UtomError, first_line
from utom_core.io.atomic import write_json
from utom_core.rundirs import check_run_dir, prepare_run_dir
from utom_core.task import Task
from utom_core.training.runlog import truncate_log
from utom_core.training.trainer import Trainer, TrainResult


def train(
    task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path] | None = None,
    b_paths: list[Path] | None = None, *, resume: bool = False, overwrite: bool = False,
    iterations: int | None = None, stop_at: int | None = None, show_progress: bool = True,
) -> TrainResult:
    """Train a new run in ``run_dir`` or resume the one there.

    ``iterations`` (resume) sets a new total; ``stop_at`` ends this call early at that
    iteration with a checkpoint, as an interruption would.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    if resume:
        checkpoint = run_dir / runs.CHECKPOINT_FILE
        saved, meta, state = runs.load_run(checkpoint)
        if meta.task != task.name:
            raise UtomError(f"{run_dir}: was trained for task {meta.task!r}, not {task.name!r}")
        if iterations is not None:
            saved = saved.model_copy(update={"iterations": iterations})
        trainer = Trainer(task, saved, run_dir,
                          a_paths or [Path(p) for p in meta.inputs_a],
                          b_paths or [Path(p) for p in meta.inputs_b], meta)
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise InputError(checkpoint, f"cannot resume from it ({first_line(err)})") from None
        prepare_run_dir(run_dir, resume, overwrite)
        truncate_log(run_dir, trainer.iteration)
    else:
        if not a_paths or not b_paths:
            raise UtomError("training needs images for both domains (--a and --b)")
        # inputs, settings and networks are checked before the directory is created (or an
        # old run replaced): a refused run changes nothing on disk
        trainer = Trainer(task, cfg, run_dir, a_paths, b_paths)
        prepare_run_dir(run_dir, resume, overwrite)
    write_json(run_dir / runs.CONFIG_FILE, trainer.cfg.model_dump(mode="json"))
    write_json(run_dir / runs.META_FILE, trainer.meta.model_dump(mode="json"))
    return trainer.fit(stop_at=stop_at, show_progress=show_progress)
