"""The one way utom writes files: a hidden temporary sibling, flushed, then renamed into place.

A reader therefore sees a file complete or not at all, whatever happens while it is written
(a crash, a full disk, Ctrl-C). Small files (checkpoints, JSON, logs, PNG figures) go through
``write_atomic``; streamed outputs (TIFF, OME-Zarr, PNG predictions) are written into a
``temporary_sibling`` by their sink and moved with ``move_into_place``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
"""Suffix of the hidden temp siblings small files are written to before being renamed."""
PARTIAL_SUFFIX = ".partial"
"""Suffix of the hidden siblings streamed outputs are written to."""


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(file)`` into a temp sibling, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide runs from the group
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temp files a killed process left in ``folder`` (never read: only renamed
    files are)."""
    stale = sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def temporary_sibling(path: Path) -> Path:
    """A unique hidden path beside ``path`` (same file system, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def move_into_place(partial: Path, path: Path) -> None:
    """Rename ``partial`` to ``path``, replacing an existing file or folder there."""
    if path.is_dir() and not path.is_symlink():
        old = temporary_sibling(path)
        path.rename(old)
        os.replace(partial, path)
        shutil.rmtree(old)
    else:
        os.replace(partial, path)
