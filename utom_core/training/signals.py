"""Ctrl-C and SIGTERM during training: finish the iteration, save, then stop."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Protocol

from utom_core.console import console
from utom_core.training.distributed import launched


class Stoppable(Protocol):
    stop_signalled: bool
    """Set on the first signal; the loop stops once every rank has agreed (``any_rank``)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and the SIGTERM a batch scheduler sends before it kills a job at its time limit."""
REPEAT_GRACE = 2.0
"""Seconds in which a repeated signal is the same request under torchrun: a terminal's Ctrl-C
reaches every rank, and torchrun's agent then forwards its own copy of it."""


@contextlib.contextmanager
def stop_on_signals(trainer: Stoppable):
    """Ctrl-C (or SIGTERM) asks the loop to stop after the current iteration and save a
    checkpoint; a second one stops at once (the last complete checkpoint stays intact)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    grace = REPEAT_GRACE if launched() else 0.0
    first: list[float] = []

    def handler(signum, frame) -> None:
        if trainer.stop_signalled:  # a second Ctrl-C: stop at once
            if time.monotonic() - first[0] >= grace:
                raise KeyboardInterrupt
            return
        first.append(time.monotonic())
        trainer.stop_signalled = True
        if not grace:  # under torchrun the signal may mean a rank died: rank 0 says what ends
            again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            console.print(f"interrupt: saving a checkpoint after this iteration ({again} "
                          "again to abort)")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
