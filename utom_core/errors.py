"""User-facing errors: the CLI prints their message as one line and exits with their code."""

from __future__ import annotations


class UtomError(Exception):
    """A problem with the user's input or options (no traceback is shown for these)."""

    exit_code = 2
    """The command's exit status (docs/guarantees.md): 2, a bad input, option or setting."""


class PathError(UtomError):
    """A problem with one file or folder; the message names it first."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple:
        """Pickled with its two arguments (a cluster's tasks send errors back this way)."""
        return type(self), (self.path, self.problem)


class InputError(PathError):
    """An input file or folder cannot be used; the message names the file."""


class DiskError(PathError):
    """The disk or the operating system refused (full, read-only, permissions): exit status 1,
    since the same command succeeds once there is space or access."""

    exit_code = 1

    @classmethod
    def refused(cls, err: OSError, path: object, doing: str = "cannot write",
                outcome: str = "") -> DiskError:
        """``PATH: cannot write (No space left on device); OUTCOME`` for an ``OSError``."""
        problem = f"{doing} ({err.strerror or err})" + (f"; {outcome}" if outcome else "")
        return cls(path, problem)


class Interrupted(UtomError):
    """Ctrl-C or SIGTERM ended the command once what it had done was saved: exit status 130,
    and the message says how to continue."""

    exit_code = 130


def interrupt_within(err: BaseException) -> bool:
    """Whether ``err`` is, or was caused by, a Ctrl-C or SIGTERM: one that landed where Python
    wraps what is raised (a class body's ``__set_name__``, as a lazily imported module runs
    one) arrives as that wrapper's error, its direct cause the interrupt."""
    causes: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__
    return any(isinstance(c, (KeyboardInterrupt, Interrupted)) for c in causes)


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type where it has none), shortened: what
    a one-line error quotes of a library's multi-line message."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]
