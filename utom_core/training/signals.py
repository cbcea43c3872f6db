"""Ctrl-C and SIGTERM during training: finish the iteration, save, then stop."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Protocol

from utom_core.console import console


class Stoppable(Protocol):
    stop_requested: bool


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and the SIGTERM a batch scheduler sends before it kills a job at its time limit."""


@contextlib.contextmanager
def stop_on_signals(trainer: Stoppable):
    """Ctrl-C (or SIGTERM) asks the loop to stop after the current iteration and save a
    checkpoint; a second one stops at once (the last complete checkpoint stays intact)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if trainer.stop_requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        trainer.stop_requested = True
        console.print("interrupt: saving a checkpoint after this iteration (Ctrl-C again to abort)")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
