"""What ``--overwrite`` may replace at an output's path: only what utom would write there.

A prediction or a model package replaces an existing path only when it is of the kind utom
writes at that path — a regular file whose first bytes are a TIFF's, a PNG's or a ZIP's, or an
OME-Zarr store laid out as utom lays one out — never a user's folder that happens to carry
the name, a file of another format, or a link. Anything else is refused in one line naming
the path and left as it is (``run_folders`` holds the same rule for run directories).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from utom_core.errors import UtomError
from utom_core.io.atomic import move_into_place

TIFF = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "tiff": TIFF, "ome-tiff": TIFF, "png": (b"\x89PNG\r\n\x1a\n",),
    "bioimageio": (b"PK\x03\x04", b"PK\x05\x06")}
"""The first bytes of each kind of file utom writes, by writer name (``bioimageio``: a zip)."""
STORE_KINDS = ("ome-zarr",)
LEVEL_ENTRIES = {"zarr.json", "c"}
"""What utom's OME-Zarr writer puts in a level's array folder (metadata, chunks)."""


def check_replaceable(path: Path, kind: str) -> None:
    """Refuse (UtomError) to replace ``path`` unless it is absent or of the ``kind`` (a writer
    name) that utom writes there."""
    if not (path.exists() or path.is_symlink()):
        return
    what = "an OME-Zarr store" if kind in STORE_KINDS else f"a {kind} file"
    if path.is_symlink():
        problem = "is a link"
    elif kind in STORE_KINDS:
        problem = _store_problem(path)
    elif not path.is_file():
        problem = "is a folder" if path.is_dir() else "is not a regular file"
    else:
        problem = _file_problem(path, SIGNATURES.get(kind, ()))
    if problem:
        raise UtomError(f"{path}: {problem}; --overwrite replaces only {what} as utom writes "
                        "it, so it was left as it is: move it away or choose another --out")


def commit_output(partial: Path, path: Path, replace: bool, kind: str) -> None:
    """Move a finished output into place; with ``replace``, only over what
    ``check_replaceable`` allows (also a path that appeared while the output was written)."""
    if replace:
        check_replaceable(path, kind)
    move_into_place(partial, path, replace)


def _file_problem(path: Path, signatures: tuple[bytes, ...]) -> str:
    if not signatures:  # a third-party format: any regular file
        return ""
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(map(len, signatures)))
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    return "" if head.startswith(signatures) else "is a file of another format"


def _store_problem(path: Path) -> str:
    """Why ``path`` is not an OME-Zarr store as utom writes one ("" if it is): a group whose
    metadata lists its levels, holding the levels and nothing else."""
    if not path.is_dir():
        return "is a file, not an OME-Zarr store"
    try:
        meta: Any = json.loads((path / "zarr.json").read_text())
        levels = {d["path"] for d in meta["attributes"]["ome"]["multiscales"][0]["datasets"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "is a folder, not an OME-Zarr image utom wrote (no readable OME metadata)"
    for entry in sorted(path.iterdir()):
        inside = {e.name for e in entry.iterdir()} if entry.is_dir() and not entry.is_symlink() \
            else None
        if entry.name == "zarr.json" and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name in levels and inside is not None and inside <= LEVEL_ENTRIES:
            continue
        return f"holds {entry.name}, which utom did not write there"
    return ""
