"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class UtomError(Exception):
    """A problem with the user's input or options (no traceback is shown for these)."""


class InputError(UtomError):
    """An input file or folder cannot be used; the message names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
