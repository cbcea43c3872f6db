"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class UtomError(Exception):
    """A problem with the user's input or options (no traceback is shown for these)."""


class InputError(UtomError):
    """An input file or folder cannot be used; the message names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type where it has none), shortened: what
    a one-line error quotes of a library's multi-line message."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]
