"""``utom run``'s output folder: an old one that --overwrite replaces is deleted only once the
new one is complete; a new run that failed or was interrupted after training is kept aside,
and finds the data it prepared inside its output again once the old output is back there.

The new output is only renamed (``move_new_run``), since the old output has to be put back
before anything is written: on a full disk that write would fail. Where it was made is then
noted in its marker (``note_where_made``), where there is room; without room, the kept
folder's name (``OUT.interrupted-TIME``, ``OUT.failed-TIME``) still says it (``relocated``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from utom_core.errors import DiskError, Interrupted, PathError, UtomError, interrupt_within
from utom_core.io.atomic import move_aside, remove, restore, sync_folder, write_json
from utom_core.run_folders import (
    MARKER_FILE,
    RUN_OUTPUT_FORMAT,
    already_exists,
    check_replaceable,
    is_used,
    mark,
    read_marker,
)
from utom_core.trained import CHECKPOINT_FILE, MODEL_FILE, RUN_SUBDIR

KEPT_NAME = r"(?P<out>.+)\.(interrupted|failed)-\d{8}-\d{6}(-\d+)?"
"""A kept new output's folder name: the output's name, why, and when."""


@contextlib.contextmanager
def output_folder(out: Path, overwrite: bool,
                  resume_command: Callable[[Path], str] | None = None) -> Iterator[None]:
    """Create and mark ``utom run``'s ``out`` for the body of the ``with`` (data, training,
    prediction, report). An old output that --overwrite replaces is moved aside and deleted
    only once the body has ended, its new report written; on any failure or interrupt before,
    the old output is put back, and a new run that had trained (a checkpoint, or a paired
    method's model) is kept beside it as ``OUT.interrupted-TIME`` or ``OUT.failed-TIME``, which
    the error names (with ``resume_command(run)`` where it was interrupted, as for a new
    output's run interrupted after training). A new folder that failed before training
    anything is removed again."""
    existed, aside = out.exists(), None
    if is_used(out):
        if not overwrite:
            raise UtomError(already_exists(out, RUN_OUTPUT_FORMAT, "run output"))
        check_replaceable(out, RUN_OUTPUT_FORMAT, "run output")
        aside = move_aside(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark(out, RUN_OUTPUT_FORMAT)
        yield
    except BaseException as err:
        trained = any((out / RUN_SUBDIR / name).exists()  # a paired method writes no
                      for name in (CHECKPOINT_FILE, MODEL_FILE))  # checkpoint
        interrupted = interrupt_within(err)
        kept = None
        if trained and aside is not None:
            with contextlib.suppress(OSError):  # else the old output still goes back
                kept = move_new_run(out, "interrupted" if interrupted else "failed")
        if aside is not None:
            _put_back(aside, out)  # renames only, before anything is written
        elif not trained:  # nothing trained: undo
            remove(out)
            if existed:
                out.mkdir()
        run = (kept or out) / RUN_SUBDIR
        hint = f": {resume_command(run)}" if resume_command else ""
        if kept is not None:
            note_where_made(kept, out)
            if interrupted:
                raise Interrupted(f"{out}: interrupted; the previous output is back in place "
                                  f"and the new run is kept in {kept}{hint}") from None
            failed = _naming_kept(err, out, kept, hint)
            if failed is err:
                raise
            raise failed.with_traceback(err.__traceback__) from None
        if trained and isinstance(err, KeyboardInterrupt):  # not training's own Interrupted
            raise Interrupted(f"{out}: interrupted; the trained run is kept in {run}{hint}"
                              ) from None
        raise
    else:  # never on a failure: whatever fails while putting it back, the old output stays
        if aside is not None:
            remove(aside)


def _put_back(aside: Path, out: Path) -> None:
    """``restore`` the old output, or say where it is whole if even that is refused."""
    try:
        restore(aside, out)
    except OSError as err:
        raise DiskError(out, f"could not put the previous output back ({err.strerror or err}); "
                             f"it is whole in {aside}: rename it to {out.name}") from None


def _naming_kept(err: BaseException, out: Path, kept: Path, hint: str) -> BaseException:
    """``err`` saying that the failed new run is kept in ``kept`` (the path it names inside
    ``out`` is there now): one line and the same exit status for what the CLI prints as one
    line (UtomError, OSError; where the disk refused, with ``hint``, how to continue it once
    there is room), a note for anything else."""
    said = f"the previous output is back in place and the failed new run is kept in {kept}"
    if not isinstance(err, UtomError | OSError):
        err.add_note(said)
        return err
    if isinstance(err, PathError):
        text = f"{_moved(str(err.path), out, kept)}: {err.problem}"
    elif isinstance(err, OSError):
        where = f"{_moved(str(err.filename), out, kept)}: " if err.filename else ""
        text = where + (err.strerror or str(err))
    else:
        text = str(err)
    refused = isinstance(err, DiskError) or (isinstance(err, OSError) and err.errno is not None)
    failed = UtomError(f"{text}; {said}" + (hint if refused else ""))
    failed.exit_code = err.exit_code if isinstance(err, UtomError) else DiskError.exit_code
    return failed


def move_new_run(out: Path, why: str) -> Path:
    """Rename the new output ``out`` that was ``why`` ("interrupted", "failed") beside it,
    under a name no other kept run has (two may fail within a second)."""
    stem = f"{out.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}"
    kept, number = out.with_name(stem), 1
    while kept.exists() or kept.is_symlink():
        number += 1
        kept = out.with_name(f"{stem}-{number}")
    os.rename(out, kept)
    sync_folder(out.parent)
    return kept


def note_where_made(kept: Path, out: Path) -> None:
    """Record in ``kept``'s marker that it was made as ``out``, where there is room for it."""
    marker = read_marker(kept, RUN_OUTPUT_FORMAT) or {"format": RUN_OUTPUT_FORMAT}
    with contextlib.suppress(OSError):  # a full disk: relocated reads it from the name
        write_json(kept / MARKER_FILE, {**marker, "made_in": os.path.abspath(out)})


def relocated(run_dir: Path) -> Callable[[str], str]:
    """Paths a run recorded inside its ``utom run`` output (its data), mapped to where that
    output now is if utom kept it aside (``move_new_run``); other paths as they are."""
    output = Path(os.path.abspath(run_dir)).parent
    marker = read_marker(output, RUN_OUTPUT_FORMAT)  # None: not a utom run output
    named = re.fullmatch(KEPT_NAME, output.name) if marker is not None else None
    made_in = (marker or {}).get("made_in") or (
        str(output.with_name(named["out"])) if named else None)
    if not made_in or run_dir.name != RUN_SUBDIR:
        return lambda path: path
    return lambda path: _moved(path, made_in, output)


def _moved(path: str, old: str | Path, new: Path) -> str:
    """``path`` at the same place inside ``new`` where it lies inside ``old``, else as it is."""
    return str(new / Path(path).relative_to(old)) if Path(path).is_relative_to(old) else path
