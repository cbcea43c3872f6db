"""A domain's images, opened lazily and seen as 2D planes (XY, or XZ/YZ of volumes).

Images are never pre-cut: windows are read on the fly from the (possibly huge) source files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utom_core.domain import Domain
from utom_core.errors import InputError
from utom_core.io import FormatTable, list_images, open_image
from utom_core.io.base import ImageSource

COLOUR_PIXELS = 2**19
"""Pixels of a domain's images sampled for its colour statistics (``lattice_windows``): the
target colours of the model choice and the background colour of the background term; about
two validation crops."""
COLOUR_WINDOW = 256
"""Side of those windows: the content map's blur needs a neighbourhood."""


@dataclass(frozen=True)
class Plane:
    """One 2D plane of a source: which image, which axis is cut, and where."""

    source: int
    axis: str
    """"" for 2D images, or the cut axis of a volume: "z" (XY plane), "y" (XZ), "x" (YZ)."""
    index: int
    shape: tuple[int, int]


class DomainImages:
    """All images of one domain, opened lazily and seen as 2D planes."""

    def __init__(self, paths: list[Path], domain: Domain, cut_axes: tuple[str, ...] = ("z",),
                 formats: FormatTable | None = None):
        self.paths, self.domain, self.cut_axes = list(paths), domain, cut_axes
        self.formats = formats
        """The format table the images are opened with (None: io's built-ins)."""
        self.quarter_turns = "z" in cut_axes
        """Whether planes may be turned by 90°: XY planes, yes; XZ/YZ planes keep z vertical,
        as prediction sees them, since z is the axis they differ along."""
        self.sources: list[ImageSource] = []
        self.planes: list[Plane] = []
        try:
            for path in list_images(paths, formats=formats):
                self.sources.append(open_image(path, formats=formats))
                src = self.sources[-1]
                if src.info.channels != domain.channels:
                    raise InputError(src.path, f"has {src.info.channels} channel(s), the "
                                     f"{domain.name} domain expects {domain.channels}")
                check_planes(src, cut_axes, domain.name)
                self.planes += _planes_of(len(self.sources) - 1, src.info.shape[1:], cut_axes)
        except BaseException:
            self.close()
            raise
        self._weights = np.array([p.shape[0] * p.shape[1] for p in self.planes], dtype=np.float64)
        self._weights /= self._weights.sum()

    def close(self) -> None:
        for src in self.sources:
            src.close()

    def reopened(self) -> DomainImages:
        """The same images opened anew: what another process (a tile-reading worker) reads
        through, since an inherited file position would be shared with this one."""
        return DomainImages(self.paths, self.domain, self.cut_axes, self.formats)

    def read(self, plane: Plane, y: int, x: int, size: int) -> np.ndarray:
        """A (C, size, size) raw window of a plane at (y, x), reflection-padded past its edges."""
        window = self.read_window(plane, y, x, size, size)
        pad = ((0, 0), (0, size - window.shape[1]), (0, size - window.shape[2]))
        if pad[1][1] or pad[2][1]:
            window = np.pad(window, pad, mode="symmetric")
        return window

    def read_window(self, plane: Plane, y: int, x: int, height: int, width: int) -> np.ndarray:
        """The (C, ≤ height, ≤ width) raw pixels of a plane at (y, x), cut at its edges."""
        h, w = plane.shape
        ys, xs = slice(y, min(y + height, h)), slice(x, min(x + width, w))
        src = self.sources[plane.source]
        if plane.axis == "":
            region: tuple[slice, ...] = (ys, xs)
        else:
            cut = slice(plane.index, plane.index + 1)
            region = {"z": (cut, ys, xs), "y": (ys, cut, xs), "x": (ys, xs, cut)}[plane.axis]
        return np.asarray(src.read(region)).reshape(self.domain.channels, ys.stop - ys.start,
                                                    xs.stop - xs.start)

    def random_position(self, rng: np.random.Generator, size: int) -> tuple[int, int, int]:
        """Index of a plane (chosen in proportion to its area) and a window corner in it."""
        index = int(rng.choice(len(self.planes), p=self._weights))
        plane = self.planes[index]
        y = int(rng.integers(0, max(1, plane.shape[0] - size + 1)))
        x = int(rng.integers(0, max(1, plane.shape[1] - size + 1)))
        return index, y, x

    def random_window(self, rng: np.random.Generator, size: int) -> np.ndarray:
        index, y, x = self.random_position(rng, size)
        return self.read(self.planes[index], y, x, size)

    def lattice_windows(self, count: int, side: int) -> Iterator[np.ndarray]:
        """(C, ≤ side, ≤ side) raw windows laid on an even lattice over every plane, about
        ``count`` pixels in all (whole planes when there are fewer): no randomness, so the
        same files always give the same windows."""
        for index, y, x, height, width in lattice([plane.shape for plane in self.planes],
                                                  count, side):
            yield self.read_window(self.planes[index], y, x, height, width)

    def lattice_pixels(self, count: int, side: int) -> np.ndarray:
        """(C, ~count) raw pixels of ``lattice_windows``."""
        return np.concatenate([window.reshape(self.domain.channels, -1)
                               for window in self.lattice_windows(count, side)], axis=1)


def lattice(shapes: list[tuple[int, int]], count: int, side: int
            ) -> list[tuple[int, int, int, int, int]]:
    """(plane, y, x, height, width) windows covering about ``count`` pixels of planes of
    ``shapes``: each plane gets windows in proportion to its area (every k-th plane of a tall
    stack gets one), spread over it on a regular grid; planes the windows would cover anyway
    are taken whole."""
    areas = np.array([h * w for h, w in shapes], dtype=np.float64)
    if areas.sum() <= count:
        return [(index, 0, 0, h, w) for index, (h, w) in enumerate(shapes)]
    share = np.cumsum(areas) / areas.sum() * max(count / side**2, 1.0)
    counts = np.diff(np.floor(np.concatenate([[0.0], share])).astype(int))
    windows = []
    for index, ((h, w), k) in enumerate(zip(shapes, counts, strict=True)):
        if k == 0:
            continue
        if k * side * side >= h * w:
            windows.append((index, 0, 0, h, w))
            continue
        rows = max(1, min(k, round(float(np.sqrt(k * h / w)))))
        cols = -(-k // rows)
        for i in range(rows):
            for j in range(cols):
                y = int(np.clip(round((i + 0.5) * h / rows - side / 2), 0, max(0, h - side)))
                x = int(np.clip(round((j + 0.5) * w / cols - side / 2), 0, max(0, w - side)))
                windows.append((index, y, x, side, side))
    return windows


VOLUME_AXES = ("Z", "Q", "I")
"""Stack axes that may be cut as z: Z, or pages whose file does not say what they are."""


def check_planes(source: ImageSource, cut_axes: tuple[str, ...], domain: str) -> None:
    """XZ/YZ planes need a volume: refuse 2D images, and stacks whose planes are not one z
    axis (e.g. time × z), where a "z" column would run across time points."""
    if "z" in cut_axes:
        return  # XY planes: any stack of planes (z, time, positions) will do
    if len(source.info.shape) != 4:
        raise InputError(source.path, f"is a 2D image; the {domain} domain is read as XZ/YZ "
                                      "planes of volumes (ZYX)")
    stacked = "".join(axis for axis, _ in source.info.stack) or "Z"
    if len(stacked) > 1:
        raise InputError(source.path, f"stacks axes {stacked} into one z axis; the {domain} "
                                      "domain needs volumes with a single z axis")
    if stacked not in VOLUME_AXES:
        raise InputError(source.path, f"stacks its planes along axis {stacked}, not z; the "
                                      f"{domain} domain needs volumes (ZYX)")


def _planes_of(source: int, spatial: tuple[int, ...], cut_axes: tuple[str, ...]) -> list[Plane]:
    if len(spatial) == 2:
        return [Plane(source, "", 0, (spatial[0], spatial[1]))]
    z, y, x = spatial
    planes: list[Plane] = []
    if "z" in cut_axes:
        planes += [Plane(source, "z", i, (y, x)) for i in range(z)]
    if "y" in cut_axes:
        planes += [Plane(source, "y", i, (z, x)) for i in range(y)]
    if "x" in cut_axes:
        planes += [Plane(source, "x", i, (z, y)) for i in range(x)]
    return planes
