"""Shared plumbing of the demo data builders: bundled images, TIFF output, region bookkeeping.

Every written file records the region of its specimen it was cut from (``regions.json`` in
the work folder). ``DemoWriter.finish`` refuses a layout in which domain A and domain B
overlap, or a test region overlaps either, so no builder can hand out aligned pairs or train
on its own test image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from utom_core.io.atomic import write_atomic, write_text
from utom_core.task import TaskData

Region = tuple[tuple[int, int], ...]
"""(start, stop) per axis of the specimen's own coordinate frame."""

PixelSize = dict[str, float]
"""Micrometers per pixel along "z", "y", "x"."""

REGIONS_FILE = "regions.json"


def bundled(name: str) -> np.ndarray:
    """A bundled demo image (utom_tasks/demo_data): PNG as (H, W, 3) uint8, TIFF as stored."""
    resource = files("utom_tasks") / "demo_data" / name
    with resource.open("rb") as handle:
        if name.endswith(".png"):
            with Image.open(handle) as image:
                return np.asarray(image.convert("RGB"))
        return tifffile.imread(handle)


def bands(length: int, test_fraction: float = 0.25, gap: int = 8) -> tuple[slice, slice, slice]:
    """Three disjoint bands along one axis — A | test | B — separated by ``gap`` guard pixels.

    A and B get equal shares of what the test band and the two gaps leave.
    """
    test = round(length * test_fraction)
    side = (length - test - 2 * gap) // 2
    if side < 1 or test < 1:
        raise ValueError(f"cannot cut {length} pixels into A | test | B with gaps of {gap}")
    return slice(0, side), slice(side + gap, side + gap + test), slice(length - side, length)


def region(*slices: slice, shape: tuple[int, ...]) -> Region:
    """Concrete (start, stop) pairs of slices over an array of ``shape``."""
    return tuple(s.indices(n)[:2] for s, n in zip(slices, shape, strict=True))


def _overlap(one: Region, other: Region) -> bool:
    return all(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in zip(one, other, strict=True))


@dataclass
class _Record:
    role: str
    specimen: str
    region: Region


class DemoWriter:
    """Writes a task's demo files into a work folder and returns them as TaskData."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, _Record] = {}
        self.paths: dict[str, list[Path]] = {"a": [], "b": [], "test": []}
        self.references: list[Path | None] = []
        self.pairs: list[tuple[Path, Path]] = []

    def _write(self, name: str, array: np.ndarray, axes: str, role: str, specimen: str,
               where: Region, pixel_size: PixelSize | None) -> Path:
        """An ImageJ-compatible TIFF with its axes and, where known, µm pixel sizes."""
        path = self.workdir / name
        metadata: dict = {"axes": axes}
        kwargs: dict = {"photometric": "rgb" if axes.endswith("S") else "minisblack"}
        if pixel_size is not None:
            kwargs["resolution"] = (1.0 / pixel_size["x"], 1.0 / pixel_size["y"])
            metadata["unit"] = "um"
            if "z" in pixel_size:
                metadata["spacing"] = pixel_size["z"]
        write_atomic(path, lambda handle: tifffile.imwrite(
            handle, np.ascontiguousarray(array), imagej=True, metadata=metadata, **kwargs))
        self.records[name] = _Record(role, specimen, where)
        return path

    def train(self, domain: str, name: str, array: np.ndarray, axes: str, specimen: str,
              where: Region, pixel_size: PixelSize | None = None,
              truth: np.ndarray | None = None, truth_axes: str | None = None) -> None:
        """One training image of domain "a", "b" or "ab", cut from ``where`` of ``specimen``.

        "ab": one volume read by both domains along different planes (isotropic restoration:
        XZ/YZ planes for A, XY planes for B, as from a user's one anisotropic stack); no two of
        those planes are an aligned pair. ``truth``: the domain B image of the same region,
        for the supervised ceiling's pairs (written beside it; unpaired training never reads
        it)."""
        path = self._write(name, array, axes, domain, specimen, where, pixel_size)
        for side in domain:
            self.paths[side].append(path)
        if truth is not None:
            truth_path = self._write(name.replace(".tif", "_truth.tif"), truth,
                                     truth_axes or axes, "truth", specimen, where, pixel_size)
            self.pairs.append((path, truth_path))

    def test(self, name: str, array: np.ndarray, axes: str, specimen: str, where: Region,
             reference: np.ndarray | None = None, reference_axes: str | None = None,
             pixel_size: PixelSize | None = None) -> None:
        """One held-out test image and, where there is one, its pixel-aligned reference."""
        self.paths["test"].append(self._write(name, array, axes, "test", specimen, where,
                                              pixel_size))
        if reference is None:
            self.references.append(None)
            return
        ref_name = name.replace(".tif", "_reference.tif")
        self.references.append(self._write(ref_name, reference, reference_axes or axes,
                                           "reference", specimen, where, pixel_size))

    def check(self) -> None:
        """Raise if A and B overlap (other than as one "ab" volume), or a test region overlaps
        a training image, in any specimen."""
        records = list(self.records.items())
        for i, (name, one) in enumerate(records):
            for other_name, other in records[i + 1:]:
                roles = {one.role, other.role}
                forbidden = roles == {"a", "b"} or (roles & {"test", "reference"}
                                                    and roles & {"a", "b", "ab", "truth"})
                if (forbidden and one.specimen == other.specimen
                        and _overlap(one.region, other.region)):
                    raise AssertionError(f"{name} ({one.role}) overlaps {other_name} "
                                         f"({other.role}) in {one.specimen}")

    def finish(self, notes: list[str]) -> TaskData:
        """Check the layout, record it in regions.json, and describe the data."""
        self.check()
        layout = {name: {"role": r.role, "specimen": r.specimen, "region": r.region}
                  for name, r in self.records.items()}
        write_text(self.workdir / REGIONS_FILE, json.dumps(layout, indent=1))
        return TaskData(a=self.paths["a"], b=self.paths["b"], test=self.paths["test"],
                        reference=self.references, notes=notes, pairs=self.pairs)
