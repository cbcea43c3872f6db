"""Progress of long loops (training, prediction): a rich bar on a terminal, plain lines in logs.

A bar redraws itself in place, which a log file cannot show: with stderr redirected (a batch
or SLURM job, ``> log 2>&1``) rich prints nothing until the end. There a loop prints one plain
line every ``UTOM_PROGRESS_SECONDS`` (default 30): done/total, rate, elapsed time, ETA and the
loop's own note (losses, MP/s). On both, once the first steps have been timed, a loop that
will outlast that interval says how long it is expected to take on this machine, and on how
many threads (``utom_core.threads``). Loops that end sooner print nothing, so a short run or a
refused one leaves only its own message.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from rich import progress as bar

from utom_core import threads
from utom_core.console import console, progress_display

INTERVAL_ENV = "UTOM_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0
ESTIMATE_AFTER = 5.0
"""Seconds of steps (after the first, which warms up) that the up-front estimate is timed on."""


def interval() -> float:
    """Seconds between plain progress lines (``UTOM_PROGRESS_SECONDS``; invalid: the default)."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def clock(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration(seconds: float) -> str:
    """A human estimate: ``40 s``, ``6.2 min``, ``1.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class LoopProgress:
    """Steps ``done`` of ``total`` (None until known) of one loop, shown as a bar or as lines.

    ``unit`` names one step ("iteration", "tile"); ``rate_unit`` and ``per_step`` give the
    rate shown (e.g. "img/s" at two images per iteration)."""

    def __init__(self, label: str, total: int | None, done: int = 0, *, unit: str,
                 rate_unit: str | None = None, per_step: float = 1.0, show: bool = True) -> None:
        self.label, self.total, self.done, self.unit = label, total, done, unit
        self.rate_unit, self.per_step = rate_unit or f"{unit}s/s", per_step
        self.show, self.note = show, ""
        self.terminal = console.is_terminal
        self.every = interval()
        self._bar = bar.Progress(
            bar.TextColumn("{task.description}", markup=False), bar.BarColumn(),
            bar.MofNCompleteColumn(), bar.TimeElapsedColumn(), bar.TimeRemainingColumn(),
            bar.TextColumn("{task.fields[note]}", markup=False),
            console=console, disable=not (show and self.terminal))
        self._task = self._bar.add_task(label, total=total, completed=done, note="")
        self._begun = done
        self._start = self._last_line = time.perf_counter()
        self._first: tuple[float, int] | None = None
        """(time, steps done) when the first step ended: rates leave its warm-up out."""
        self._estimated = self._printed = False

    @contextlib.contextmanager
    def shown(self) -> Iterator[LoopProgress]:
        """Show the loop while the block runs (a failure clears the bar; see progress_display)."""
        with progress_display(self._bar):
            yield self
        self._finished()

    def update(self, done: int, total: int | None = None, note: str | None = None) -> None:
        now = time.perf_counter()
        self.done = done
        self.total = total if total is not None else self.total
        self.note = note if note is not None else self.note
        self._bar.update(self._task, completed=done, total=self.total, note=self.note)
        if not self.show:
            return
        if self._first is None:
            self._first = (now, done)
            return
        if not self._estimated and now - self._first[0] >= min(ESTIMATE_AFTER, self.every):
            self._estimate(now)
        if not self.terminal and self._estimated and now - self._last_line >= self.every:
            self._line(now)

    def _rate(self, now: float) -> float:
        """Steps per second since the first step ended."""
        since, steps = self._first or (self._start, 0)
        return (self.done - steps) / max(now - since, 1e-9)

    def _print(self, text: str) -> None:
        self._printed = True
        console.print(f"{self.label}: {text}", soft_wrap=True, markup=False, highlight=False)

    def _estimate(self, now: float) -> None:
        """Once: the expected duration of the whole loop, from its first timed steps; said
        only for a loop that will outlast the line interval."""
        self._estimated = True
        rate = self._rate(now)
        if self.total is None or rate <= 0 or self._first is None:
            return
        expected = now - self._start + (self.total - self.done) / rate
        if expected >= self.every:
            ahead = self.total - self._begun
            steps = f"{ahead} of {self.total}" if self._begun else f"{self.total}"
            given = threads.applied()
            self._print(f"{steps} {self.unit}s, expected to take about {duration(expected)} "
                        f"on this machine ({1 / rate:.3g} s per {self.unit}, timed over "
                        f"{self.done - self._first[1]} {self.unit}s"
                        + (f"; {given})" if given else ")"))

    def _line(self, now: float) -> None:
        self._last_line = now
        rate = self._rate(now)
        of = f"/{self.total} ({self.done / self.total:.0%})" if self.total else ""
        eta = f", ETA {clock((self.total - self.done) / rate)}" if self.total and rate > 0 else ""
        note = f"; {self.note}" if self.note else ""
        self._print(f"{self.unit} {self.done}{of}, {rate * self.per_step:.3g} {self.rate_unit}, "
                    f"elapsed {clock(now - self._start)}{eta}{note}")

    def _finished(self) -> None:
        """A last line in a log that showed progress lines: the loop's end and its time."""
        if self.show and not self.terminal and self._printed:
            note = f"; {self.note}" if self.note else ""
            of = f"/{self.total}" if self.total else ""
            self._print(f"{self.done}{of} {self.unit}s in "
                        f"{clock(time.perf_counter() - self._start)}{note}")
