"""Contiguous pixel data in a file, reserved up front and written region by region with
``pwrite`` (never through a memory map: a full disk must be an ``OSError``, not SIGBUS)."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import numpy as np


class FileRegions:
    """A contiguous C-order array in a file, written region by region with ``pwrite``.

    Not through a memory map: a store into a mapped page the disk has no room for ends the
    process with SIGBUS, while a write returns ENOSPC (an ``OSError``, reported in one line).
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)
        self.strides = [math.prod(shape[k + 1:]) * self.dtype.itemsize for k in range(len(shape))]

    def reserve(self) -> None:
        """Allocate the pixel data's blocks now, so that a disk without room for the whole
        output refuses it before the first tile rather than hours later. File systems that
        cannot allocate ahead (``posix_fallocate`` unsupported) are left to the writes."""
        if not hasattr(os, "posix_fallocate"):
            return
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, self.offset, math.prod(self.shape) * self.dtype.itemsize)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
        finally:
            os.close(fd)

    def __setitem__(self, index: tuple[slice, ...], value: np.ndarray) -> None:
        bounds = [region.indices(n)[:2] for region, n in zip(index, self.shape, strict=True)]
        extents = tuple(stop - start for start, stop in bounds)
        block = np.ascontiguousarray(np.broadcast_to(value, extents), self.dtype)
        if block.size == 0:
            return
        # axes after ``split`` are whole: each index into the axes before it is one run of bytes
        split = max((k for k, n in enumerate(extents) if n != self.shape[k]), default=0)
        starts = np.array([self.offset + sum(start * stride for (start, _), stride in
                                             zip(bounds, self.strides, strict=True))])
        for k in range(split):  # file offsets of the runs, in the block's (C) order
            starts = np.add.outer(starts, np.arange(extents[k]) * self.strides[k]).ravel()
        run, data = block.nbytes // len(starts), block.data.cast("B")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for k, at in enumerate(starts.tolist()):
                _write_all(fd, data[k * run:(k + 1) * run], at)
        finally:
            os.close(fd)


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    """``pwrite`` all of ``data``: a short write is retried, and the retry reports the error."""
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written
