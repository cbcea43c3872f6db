"""Terminal output: one rich console on stderr for progress and messages, rank-aware.

Under ``torchrun`` only rank 0 talks; other ranks stay quiet so logs are not duplicated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rich.console import Console
from rich.progress import Progress


def is_main_process() -> bool:
    """True on rank 0 of a distributed job, or when not distributed at all."""
    return os.environ.get("RANK", "0") == "0"


# markup=False: messages hold file names, and "[v2]" or "scan[/b]" in a path is not markup (a
# progress bar's TextColumn parses markup on its own: pass markup=False to one that shows names)
console = Console(stderr=True, quiet=not is_main_process(), highlight=False, markup=False)
stdout = Console(highlight=False, markup=False)
"""Listings and results that a user may pipe."""


@contextlib.contextmanager
def progress_display(progress: Progress) -> Iterator[Progress]:
    """Show ``progress`` while the block runs; if the block fails, the bar is cleared, so the
    error message is the only line the failure leaves on the terminal or in a log."""
    progress.start()
    try:
        yield progress
    except BaseException:
        progress.live.transient = True
        progress.live.stop()  # not progress.stop(), which adds a blank line to logs
        raise
    progress.stop()
