"""Outputs are written next to their destination and moved into place only when complete."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A unique hidden path beside ``path`` (same file system, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


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
