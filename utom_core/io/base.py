"""The small interface every image format implements (readers and writers are registered).

Arrays are always canonical: channels first, then the spatial axes — (C, Y, X) for 2D and
(C, Z, Y, X) for volumes — whatever the file's own axis order. Regions are read lazily so
tiles of a whole slide never require the whole slide in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ImageInfo:
    """Shape, pixel type and physical metadata of an image in canonical axis order."""

    shape: tuple[int, ...]
    """(C, Y, X) or (C, Z, Y, X)."""
    dtype: np.dtype
    pixel_size: dict[str, float] = field(default_factory=dict)
    """Physical size per spatial axis ("z", "y", "x") in ``unit``."""
    unit: str = "micrometer"
    stack: tuple[tuple[str, int], ...] = ()
    """The file axes folded into canonical z, outer first, with their sizes (e.g.
    ``(("T", 2), ("Z", 3))`` for a TZYX hyperstack); empty where unknown (a plain z)."""

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def spatial_axes(self) -> str:
        return "zyx" if len(self.shape) == 4 else "yx"

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(Y, X): the size of one plane."""
        return self.shape[-2], self.shape[-1]


@runtime_checkable
class ImageSource(Protocol):
    """An open image that returns regions on demand."""

    path: Path
    info: ImageInfo

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Pixels of ``region`` (slices over the spatial axes) as (C, ...) in the file's dtype."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ImageReader(Protocol):
    """Opens one file format lazily."""

    name: str

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File name endings this format reads (a class attribute will do)."""
        ...

    def open(self, path: Path) -> ImageSource: ...


@runtime_checkable
class ImageSink(Protocol):
    """An output being written region by region; nothing appears at its path until ``commit``."""

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None: ...

    def commit(self, replace: bool = False) -> None:
        """Finish and move the result to its final path atomically; refuse (UtomError) if
        something is there by then, unless ``replace``."""
        ...

    def abort(self) -> None:
        """Remove everything written so far."""
        ...


@runtime_checkable
class ImageWriter(Protocol):
    """Creates outputs of one file format."""

    name: str

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File name endings this format writes (a class attribute will do)."""
        ...

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> ImageSink: ...
