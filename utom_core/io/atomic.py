"""The one way utom writes files: a hidden temporary sibling, flushed, then renamed into place.

A reader therefore sees a file complete or not at all, whatever happens while it is written
(a crash, a full disk, Ctrl-C). Small files (checkpoints, JSON, logs, PNG figures) go through
``write_atomic``; streamed outputs (TIFF, OME-Zarr, PNG predictions) are written into a
``temporary_sibling`` by their sink and moved with ``move_into_place``, which leaves alone
whatever appeared at the path meanwhile unless asked to replace it (``--overwrite``). An
output folder that ``--overwrite`` replaces is moved out of the way with ``move_aside`` and
put back with ``restore`` or deleted with ``remove``. Every rename is made durable by syncing
its folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from utom_core.errors import UtomError

TEMP_SUFFIX = ".tmp"
"""Suffix of the hidden temp siblings small files are written to before being renamed."""
PARTIAL_SUFFIX = ".partial"
"""Suffix of the hidden siblings streamed outputs are written to."""


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(file)`` into a temp sibling, fsync, then rename over ``path``.

    The disk refusing (full, read-only) is an ``OSError`` naming ``path`` — not its hidden
    temporary, and also where the failing write names no file — and the old file stays."""
    path = Path(path)
    try:
        _write_and_rename(path, write)
    except OSError as err:
        if err.errno is None:  # not the system's refusal (e.g. an encoder's OSError)
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None


def _write_and_rename(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide runs from the group
        os.close(fd)
        with open(tmp, "wb") as handle:  # a named handle: writers such as tifffile want one
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


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


def sync_folder(folder: Path) -> None:
    """fsync ``folder`` so the renames in it survive a power cut (where folders can be
    synced: not on Windows or some network file systems)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return
    sync_folder(path.parent)


def move_aside(path: Path) -> Path:
    """Rename ``path`` to a new hidden sibling (atomic: the same file system) and return it:
    an old output stays whole while its replacement is made, to be put back with ``restore``
    or deleted with ``remove``."""
    aside = temporary_sibling(path)
    os.rename(path, aside)
    sync_folder(path.parent)
    return aside


def restore(aside: Path, path: Path) -> None:
    """Put back at ``path`` what ``move_aside`` moved to ``aside``, replacing whatever was
    made at ``path`` since: that is renamed away first and deleted last, so a slow deletion
    (or a Ctrl-C during it) never leaves the old one hidden."""
    made = None
    if path.exists() or path.is_symlink():
        try:
            made = move_aside(path)
        except OSError:  # no room for another name in the folder: delete it where it is
            remove(path)
    os.rename(aside, path)
    sync_folder(path.parent)
    if made is not None:
        remove(made)


def move_into_place(partial: Path, path: Path, replace: bool = False) -> None:
    """Rename ``partial`` to ``path``. Without ``replace``, whatever is at ``path`` by then —
    also a file another process or a user put there while ``partial`` was written — stays, and
    the move is refused (``partial`` is left to the caller's abort)."""
    if replace:
        _replace(partial, path)
        return
    try:
        _rename_new(partial, path)
    except FileExistsError:
        raise UtomError(f"{path}: appeared while utom was writing it (another program or a "
                        "user); it was left as it is: use --overwrite to replace it") from None
    sync_folder(path.parent)


def _replace(partial: Path, path: Path) -> None:
    """Rename ``partial`` over ``path``, replacing an existing file or folder there."""
    if path.is_dir() and not path.is_symlink():
        old = move_aside(path)
        os.replace(partial, path)
        remove(old)
    else:
        os.replace(partial, path)
    sync_folder(path.parent)


_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM,
                errno.EXDEV, errno.EMLINK}
"""What a file system without ``renameat2`` flags or hard links answers."""
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def _rename_new(partial: Path, path: Path) -> None:
    """Rename that raises FileExistsError rather than replace anything at ``path``, atomically
    where the system allows: ``renameat2(RENAME_NOREPLACE)`` (Linux), else a hard link for a
    file, else a check and rename under a lock on the folder (against other utom processes)."""
    if _renameat2_noreplace(partial, path):
        return
    if not partial.is_dir():
        try:
            os.link(partial, path, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                raise
        else:
            partial.unlink()
            return
    with _folder_lock(path.parent):
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        os.rename(partial, path)


@functools.cache
def _renameat2() -> Any:
    """libc's ``renameat2``, where there is one (Linux with glibc 2.28 or later)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _renameat2_noreplace(partial: Path, path: Path) -> bool:
    """Rename without replacing; False where the system or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(partial), _AT_FDCWD, os.fsencode(path),
                _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(path))  # EEXIST: a FileExistsError


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` (where ``fcntl`` exists)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
