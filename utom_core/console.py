"""Terminal output: one rich console on stderr for progress and messages, rank-aware.

Under ``torchrun`` only rank 0 talks; other ranks stay quiet so logs are not duplicated.
"""

from __future__ import annotations

import os

from rich.console import Console


def is_main_process() -> bool:
    """True on rank 0 of a distributed job, or when not distributed at all."""
    return os.environ.get("RANK", "0") == "0"


console = Console(stderr=True, quiet=not is_main_process(), highlight=False)
stdout = Console(highlight=False)
"""Listings and results that a user may pipe."""
