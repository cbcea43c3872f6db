"""A real small file system for fault tests: a tmpfs that can be filled or made read-only, and
``utom`` run in a fresh process against it (the tests run as root)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability.checks import CLI, ONE_THREAD

DISK_SIZE = "8m"
ROOM = 64 * 1024
"""Free space left on a "full" disk: room for small JSON files, never for a checkpoint or
an image (the outputs here are several times larger)."""
NO_SPACE = os.strerror(errno.ENOSPC)
READ_ONLY = os.strerror(errno.EROFS)


@dataclass
class Result:
    code: int
    out: str
    err: str


def utom(*args: object, **env: str) -> Result:
    """``utom ARGS`` in a fresh interpreter, for the faults themselves: what a user gets (a
    SIGBUS there would not take pytest with it). Set-up and recovery run in-process."""
    done = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ONE_THREAD, **env})
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Disk:
    """A mounted tmpfs; ``work`` is where the tests write, the filler lies beside it."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    def fill(self, room: int = 0) -> None:
        """Allocate all free space but ``room`` bytes (again where a process writing to the
        disk took some between measuring the space and allocating it)."""
        fd = os.open(self.root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for _ in range(50):
                stats = os.statvfs(self.root)
                size = stats.f_bavail * stats.f_frsize - room
                try:
                    if size > 0:
                        os.posix_fallocate(fd, os.fstat(fd).st_size, size)
                    return
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
            raise AssertionError(f"{self.root}: could not fill it (other writers)")
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)

    def read_only(self) -> None:
        _mount("-o", "remount,ro", self.root)


def _mount(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def disk(tmp_path) -> Iterator[Disk]:
    root = tmp_path / "disk"
    root.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", root)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        (root / "work").mkdir()
        yield Disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)
