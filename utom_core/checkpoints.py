"""Checkpoint files: written atomically, read back with the weights-only unpickler only.

A checkpoint that names any Python object is refused before anything in it runs, and every
way a file can be unusable (missing, a folder, truncated, not a checkpoint) is one line.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import IO, Any, cast

import torch

from utom_core.errors import InputError, first_line
from utom_core.io.atomic import write_atomic


class _RecordedWrites:
    """A file whose failed write is kept: ``torch.save`` swallows it and raises a
    ``RuntimeError`` about stream positions instead (what a full disk looks like)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()


def _torch_save(obj: Any, handle: IO[bytes]) -> None:
    """``torch.save`` that raises the ``OSError`` of a failed write (ENOSPC, EIO, …)."""
    writes = _RecordedWrites(handle)
    try:
        torch.save(obj, cast(IO[bytes], writes))  # torch only writes and flushes it
    except RuntimeError:
        if writes.error is None:
            raise
        raise writes.error from None


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` into ``path`` atomically: on a full disk or a read-only folder an
    ``OSError`` naming ``path``, and the previous file intact."""
    write_atomic(path, lambda handle: _torch_save(obj, handle))


def _refused_global(err: Exception) -> str | None:
    """The Python object a refused checkpoint names (``posix.system``), if that was the cause."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return found.group(1) if found else None


def _unpickling_detail(err: Exception) -> str:
    """The informative part of torch's weights-only refusal (not its advice to turn it off)."""
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(err))
    if found:
        return found.group(1).strip()
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation", "(")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith(skip)]
    return detail[0] if detail else type(err).__name__


def load_torch_file(path: Path, what: str = "checkpoint") -> Any:
    """Load a torch file safely: tensors and plain data only, never arbitrary code. ``what``
    names the file in messages (a checkpoint, a state dict of the authors' code)."""
    try:
        with warnings.catch_warnings():  # e.g. torch's note on the pickle protocol
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except IsADirectoryError:
        raise InputError(path, f"is a folder, not a {what} file") from None
    except pickle.UnpicklingError as err:  # what torch's weights-only unpickler raises
        name = _refused_global(err)
        if name:
            raise InputError(path, f"refused: it names the Python object {name}, and loading "
                                   "anything but tensors and plain data could run code") from None
        raise InputError(path, f"not a loadable {what} ({_unpickling_detail(err)[:160]})"
                         ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise InputError(path, f"not a loadable {what} ({first_line(err)})") from None


def load_torch(path: Path) -> dict[str, Any]:
    """Load a utom checkpoint or model file safely (``load_torch_file``)."""
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or "config" not in state or "meta" not in state:
        raise InputError(path, "not a utom checkpoint (missing config or run metadata)")
    return state
