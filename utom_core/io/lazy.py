"""A lazy source over any indexable array with a file axis string, read in canonical order.

TIFF and OME-Zarr files store axes in many orders (``TZCYX``, ``YXS``, ``QYX``, …). Readers
wrap their lazy array here: channel-like axes (C, S) become C, every other non-spatial axis
(Z, T, I, Q, …) becomes one Z-like stack of planes, and regions are read on demand. The axes
folded into that stack stay recorded (``ImageInfo.stack``), so outputs keep them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from utom_core.console import console
from utom_core.errors import InputError
from utom_core.io.base import ImageInfo
from utom_core.io.units import usable

CHANNEL_AXES = "CS"
"""File axes that hold channels (S: samples of an RGB pixel)."""
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_limit() -> int | None:
    """A container's memory limit, which MemAvailable ignores (the whole limit: its usage
    counts reclaimable file cache, so limit - usage would refuse files that fit)."""
    try:
        limit = CGROUP_LIMIT.read_text().strip()
        return None if limit == "max" else int(limit)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process can at most allocate without swapping, where the system says."""
    known = [n for n in (_meminfo_available(), _cgroup_limit()) if n is not None]
    return min(known) if known else None


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} TiB"


def check_fits_memory(path: Path, nbytes: int, what: str) -> None:
    """Refuse, before allocating anything, a block that must be decoded whole and cannot fit
    in memory: a header may declare any size, and the allocation would fail (or swap) only
    after gigabytes were claimed."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise InputError(path, f"{what} of {_size(nbytes)} must be decoded at once, more than "
                               f"the {_size(available)} of memory available (a corrupt header? "
                               "large images read piece by piece when stored tiled or as "
                               "OME-Zarr)")


class ArraySource:
    """An ImageSource over ``array`` (numpy-style basic indexing) whose axes are ``axes``."""

    def __init__(self, path: Path, array: Any, axes: str, pixel_size: dict[str, float],
                 unit: str = "micrometer") -> None:
        axes = axes.upper()
        if len(axes) != len(array.shape) or "Y" not in axes or "X" not in axes:
            raise InputError(path, f"cannot interpret axes {axes!r} of an image shaped "
                                   f"{tuple(array.shape)}")
        if np.dtype(array.dtype).kind == "c":
            raise InputError(path, f"has complex pixels ({np.dtype(array.dtype)}), which utom "
                                   "would cut to their real part; save magnitude, phase or "
                                   "the real part as real-valued images")
        self.path, self._array, self._axes = path, array, axes
        self._channel = [i for i, a in enumerate(axes) if a in CHANNEL_AXES]
        self._stack = [i for i, a in enumerate(axes)
                       if a not in CHANNEL_AXES + "YX" and array.shape[i] > 1]
        self._singleton = [i for i, a in enumerate(axes)
                           if a not in CHANNEL_AXES + "YX" and array.shape[i] == 1]
        self._yx = [axes.index("Y"), axes.index("X")]
        channels = math.prod(array.shape[i] for i in self._channel)
        spatial = tuple(array.shape[i] for i in self._yx)
        if self._stack:
            spatial = (math.prod(array.shape[i] for i in self._stack), *spatial)
        else:
            pixel_size = {k: v for k, v in pixel_size.items() if k != "z"}
        stack = tuple((axes[i], int(array.shape[i])) for i in self._stack)
        pixel_size, dropped = usable(pixel_size)
        for note in dropped:
            console.print(f"note: {path}: {note}", soft_wrap=True)
        self.info = ImageInfo((channels, *spatial), np.dtype(array.dtype), pixel_size, unit,
                              stack)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Pixels of ``region`` as (C, …); floats are checked for NaN/Inf."""
        try:
            data = self._read(region)
        except InputError:
            raise
        except Exception as err:  # decoder errors of corrupt or truncated files
            raise InputError(self.path, f"cannot read pixels ({type(err).__name__}: {err})"
                             ) from None
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise InputError(self.path, "image contains NaN or infinite values")
        return data

    def _read(self, region: tuple[slice, ...]) -> np.ndarray:
        *zs, ys, xs = region
        index: list[Any] = [slice(None)] * len(self._axes)
        for i in self._singleton:
            index[i] = 0
        index[self._yx[0]], index[self._yx[1]] = ys, xs
        kept = [i for i in range(len(self._axes)) if i not in self._singleton]
        if not self._stack:
            return self._canonical(self._array[tuple(index)], kept, [])
        if len(self._stack) == 1:
            index[self._stack[0]] = zs[0]
            return self._canonical(self._array[tuple(index)], kept, self._stack)
        planes = []
        stack_shape = [self._array.shape[i] for i in self._stack]
        for z in range(*zs[0].indices(self.info.shape[1])):
            for i, position in zip(self._stack, np.unravel_index(z, stack_shape), strict=True):
                index[i] = int(position)
            plane = self._array[tuple(index)]
            planes.append(self._canonical(plane, [k for k in kept if k not in self._stack], []))
        return np.stack(planes, axis=1)

    def _canonical(self, data: np.ndarray, kept: list[int], stack: list[int]) -> np.ndarray:
        """Reorder a read block (axes ``kept`` of the file) to (C, [Z], Y, X)."""
        order = [kept.index(i) for i in (*self._channel, *stack, *self._yx)]
        data = np.asarray(data).transpose(order)
        return np.ascontiguousarray(data.reshape(-1, *data.shape[len(self._channel):]))

    def close(self) -> None:
        self._array = None
