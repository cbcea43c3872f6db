"""Folders utom creates and may replace: run directories (``utom train --out``) and the output
folders of ``utom run``. Nothing here deletes a folder utom did not write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from utom_core.errors import UtomError
from utom_core.io.atomic import remove_stale_temporaries, temporary_sibling
from utom_core.runs import CHECKPOINT_FILE, CONFIG_FILE, META_FILE

RUN_SUBDIR = "run"
"""Where ``utom run`` trains, inside its output folder."""
METRICS_FILE = "metrics.json"


def _is_used(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def check_run_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to reuse a run directory unless resuming or overwriting (changes nothing)."""
    if resume:
        if not (path / CHECKPOINT_FILE).is_file():
            raise UtomError(f"{path}: nothing to resume (no {CHECKPOINT_FILE})")
        return
    if _is_used(path):
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
        for folder in (path, (path / CHECKPOINT_FILE).parent):
            remove_stale_temporaries(folder)
        return
    try:
        if _is_used(path):
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UtomError(f"{path}: cannot create the run directory ({err.strerror or err})") \
            from None


def prepare_out_dir(out: Path, overwrite: bool) -> Path | None:
    """Create ``utom run``'s ``out``. An old output that --overwrite replaces is moved aside and
    returned: it is deleted once the new run has trained, and put back if the new run fails
    before."""
    aside = None
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UtomError(f"{out}: already exists; use --overwrite to replace it")
        if not (out / RUN_SUBDIR).exists() and not (out / METRICS_FILE).exists():
            raise UtomError(f"{out}: --overwrite refused: not a utom run output")
        aside = temporary_sibling(out)
        out.rename(aside)
    out.mkdir(parents=True, exist_ok=True)
    return aside
