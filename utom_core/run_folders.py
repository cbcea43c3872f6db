"""Folders utom creates and may replace: run directories (``utom train --out``) and the output
folders of ``utom run``.

Each is marked when utom creates it: ``utom.json`` holds the folder's format id. ``--overwrite``
replaces only a folder with the right marker that holds nothing but what utom writes there
(``RUN_DIR_LAYOUT``, and for ``utom run`` outputs the files it recorded in the marker as it
wrote them). Anything else is refused and left untouched: a user's folder that merely looks like
a run, a run from before markers existed, a run holding one file of the user's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utom_core import __version__
from utom_core.errors import DiskError, UtomError
from utom_core.io.atomic import (
    remove,
    remove_stale_temporaries,
    write_json,
)
from utom_core.trained import (
    BEST_MODEL_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    META_FILE,
    MODEL_FILE,
    RUN_SUBDIR,
    TRAINING_PREVIEW_DIR,
    VAL_CURVE_FILE,
    VAL_LOG_FILE,
)

MARKER_FILE = "utom.json"
"""Written first into every folder utom creates for a run; holds the folder's format id."""
RUN_DIR_FORMAT = "utom-run-dir/1"
RUN_OUTPUT_FORMAT = "utom-run-output/1"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
DATA_SUBDIR = "data"
PREDICTION_DIR = "predictions"
EVALUATION_PREVIEW_DIR = "previews"
RECORDED_DIRS = (DATA_SUBDIR, PREDICTION_DIR, EVALUATION_PREVIEW_DIR)
"""Folders of a ``utom run`` output whose entries (named after the user's or a task's data)
are recorded in the marker as they are written."""

TEMPORARY = r"\..+\.\w+\.(tmp|partial)"
"""Hidden temporary siblings utom's writers use (left by a killed process)."""


@dataclass(frozen=True)
class Layout:
    """What utom writes in one folder: entries whose names match ``names`` (regular
    expressions; replaced whole) and sub-folders laid out as ``folders`` say."""

    names: tuple[str, ...] = ()
    folders: Mapping[str, Layout] = field(default_factory=dict)


_CHECKPOINTS, _CHECKPOINT = CHECKPOINT_FILE.split("/")
RUN_DIR_LAYOUT = Layout(
    names=tuple(map(re.escape, (MARKER_FILE, CONFIG_FILE, META_FILE, MODEL_FILE, LOG_FILE,
                                BEST_MODEL_FILE, VAL_LOG_FILE, VAL_CURVE_FILE))),
    folders={_CHECKPOINTS: Layout((re.escape(_CHECKPOINT),)),
             TRAINING_PREVIEW_DIR: Layout((r"(a2b|b2a)_\d+\.png",))})


def is_used(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def refuse_inputs_inside(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output folder that is, or holds, an input: replacing it would delete it."""
    root = out.resolve()
    for path in inputs:
        resolved = path.resolve()
        if resolved == root or root in resolved.parents:
            raise UtomError(f"{out}: holds the input {path}; choose another --out")


def read_marker(path: Path, fmt: str) -> dict[str, Any] | None:
    """The marker of ``path`` if it has one of format ``fmt``."""
    try:
        marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == fmt else None


def mark(path: Path, fmt: str) -> None:
    write_json(path / MARKER_FILE, {"format": fmt, "utom_version": __version__})


def _foreign(folder: Path, layout: Layout) -> Iterator[Path]:
    """Entries under ``folder`` that utom does not write there (links are never utom's)."""
    for entry in sorted(folder.iterdir()):
        sub = layout.folders.get(entry.name)
        if entry.is_symlink():
            yield entry
        elif sub is not None and entry.is_dir():
            yield from _foreign(entry, sub)
        elif not any(re.fullmatch(name, entry.name) for name in (*layout.names, TEMPORARY)):
            yield entry


def _output_layout(marker: Mapping[str, Any]) -> Layout:
    """A ``utom run`` output: fixed names, the run, and the entries its marker recorded."""
    recorded: dict[str, list[str]] = {folder: [] for folder in RECORDED_DIRS}
    for entry in marker.get("written", []):
        folder, _, name = str(entry).partition("/")
        if folder in recorded and name:
            recorded[folder].append(re.escape(name))
    return Layout(names=tuple(map(re.escape, (MARKER_FILE, METRICS_FILE, REPORT_FILE))),
                  folders={RUN_SUBDIR: RUN_DIR_LAYOUT,
                           **{folder: Layout(tuple(names)) for folder, names in recorded.items()}})


def check_replaceable(path: Path, fmt: str, what: str) -> None:
    """Refuse to replace ``path`` unless it is marked as ``fmt`` and holds only utom's files."""
    marker = read_marker(path, fmt) if path.is_dir() else None
    if marker is None:
        raise UtomError(f"{path}: --overwrite refused: not a utom {what} (no {MARKER_FILE} "
                        f"of format {fmt}); if an older utom wrote it, delete it by hand")
    layout = RUN_DIR_LAYOUT if fmt == RUN_DIR_FORMAT else _output_layout(marker)
    foreign = list(_foreign(path, layout))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise UtomError(f"{path}: --overwrite refused: holds {foreign[0].relative_to(path)}"
                        f"{more}, which utom did not write; move it out or delete the folder "
                        "by hand")


def already_exists(path: Path, fmt: str, what: str, resumable: bool = False) -> str:
    """That ``path`` is taken, with only the ways out that would work: --resume where a run
    checkpointed there, --overwrite where utom may replace it, else another --out."""
    ways = ["--resume to continue it"] if resumable and (path / CHECKPOINT_FILE).is_file() \
        else []
    try:
        check_replaceable(path, fmt, what)
        ways.append("--overwrite to replace it")
    except UtomError:
        pass
    if ways:
        return f"{path}: already exists; use {' or '.join(ways)}"
    return (f"{path}: already exists and is not a utom {what} that --overwrite may replace; "
            "choose another --out")


def _nothing_to_resume(path: Path) -> str:
    """Why --resume cannot continue ``path``, and what to do instead (never --resume again)."""
    if (path / RUN_SUBDIR / CHECKPOINT_FILE).is_file():
        return f"{path}: is a utom run output; resume its run with --out {path / RUN_SUBDIR}"
    if read_marker(path, RUN_DIR_FORMAT) is not None:
        return (f"{path}: nothing to resume: training stopped before its first checkpoint "
                f"({CHECKPOINT_FILE}); start it again with the same command without --resume")
    if is_used(path):
        return (f"{path}: nothing to resume: not a utom run directory (no {CHECKPOINT_FILE}); "
                "point --out at the run directory")
    return f"{path}: nothing to resume (no run there); start a new run without --resume"


def _unstarted(path: Path) -> bool:
    """A run directory that training left before its first checkpoint: marked, no model, only
    utom's files. Nothing of value is there, so a new run simply starts in it."""
    if read_marker(path, RUN_DIR_FORMAT) is None or any(
            (path / name).exists() for name in (CHECKPOINT_FILE, MODEL_FILE, BEST_MODEL_FILE)):
        return False
    return next(_foreign(path, RUN_DIR_LAYOUT), None) is None


def check_run_dir(path: Path, resume: bool, overwrite: bool, inputs: Iterable[Path] = (),
                  resumable: bool = False) -> None:
    """Refuse to reuse a run directory unless resuming or overwriting (changes nothing);
    ``resumable``: the command can --resume (its refusal offers it)."""
    if resume:
        if not (path / CHECKPOINT_FILE).is_file():
            raise UtomError(_nothing_to_resume(path))
        return
    refuse_inputs_inside(path, inputs)
    if is_used(path) and not _unstarted(path):
        if not overwrite:
            raise UtomError(already_exists(path, RUN_DIR_FORMAT, "run directory", resumable))
        check_replaceable(path, RUN_DIR_FORMAT, "run directory")


def prepare_run_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Create a fresh, marked run directory, or empty one utom wrote (--overwrite).

    Resuming removes the temp files a killed run may have left (they are never read) and
    marks a run from before markers existed."""
    check_run_dir(path, resume, overwrite)
    try:
        if resume:
            for folder in (path, (path / CHECKPOINT_FILE).parent):
                remove_stale_temporaries(folder)
        elif is_used(path):
            for entry in sorted(path.iterdir()):  # checked above: every one is utom's
                remove(entry)
        path.mkdir(parents=True, exist_ok=True)
        if read_marker(path, RUN_DIR_FORMAT) is None:
            mark(path, RUN_DIR_FORMAT)
    except OSError as err:
        raise DiskError.refused(err, path, "cannot create the run directory") from None


def record_outputs(out: Path) -> None:
    """Record in ``out``'s marker the entries utom has written so far in its data, prediction
    and preview folders, so that a later --overwrite knows them as utom's."""
    marker = read_marker(out, RUN_OUTPUT_FORMAT) or {"format": RUN_OUTPUT_FORMAT,
                                                 "utom_version": __version__}
    written = set(marker.get("written", []))
    for folder in RECORDED_DIRS:
        if (out / folder).is_dir():
            written |= {f"{folder}/{entry.name}" for entry in (out / folder).iterdir()
                        if not re.fullmatch(TEMPORARY, entry.name)}
    write_json(out / MARKER_FILE, {**marker, "written": sorted(written)})
