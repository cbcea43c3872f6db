"""Held-out regions of one's own image (``utom run --test-region``): a test region cut out of
the one --a image, with guard gaps, so training never sees it.

Nothing is written until the plan (``hold_out``) has been checked; ``HeldOut.cut`` then writes
the pieces as TIFFs into the run's data folder, with a ``regions.json`` like the demo builders'.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utom_core.errors import DiskError, InputError, UtomError
from utom_core.evaluation.metrics import SSIM_PAD
from utom_core.io import FormatTable, ImageInfo, image_stem, list_images, open_image, writer_for
from utom_core.io.atomic import write_text
from utom_core.task import Task, TaskData

GUARD_GAP = 16
"""Pixels between a test region and the training pieces around it, as the demo builders leave
(utom_tasks.demo.bands): a structure on the border is not half trained on, half tested."""
SMALLEST_REGION = SSIM_PAD + 1
"""Rows and columns a test region needs at least: SSIM's window reflects ``SSIM_PAD`` pixels at
each border, which needs more pixels than that along each axis."""
STRIP_VALUES = 2**24
"""Values per strip in which a piece is copied: memory stays bounded for whole slides."""

Bound = int | float | None
"""A region bound as written: pixels (int), a fraction of the axis (float), or the edge."""
Box = tuple[int, int, int, int]
"""(row start, row stop, column start, column stop) in pixels."""


@dataclass(frozen=True)
class RegionSpec:
    """A ``--test-region ROWS,COLUMNS`` as written, e.g. ``:,0.4:0.6`` or ``0:512,100:612``."""

    text: str
    bounds: tuple[Bound, Bound, Bound, Bound]

    def resolve(self, height: int, width: int, where: str) -> Box:
        """The region in pixels of a ``height`` × ``width`` image, checked to lie inside it."""
        box = []
        axes = (("rows", height, 0), ("rows", height, height), ("columns", width, 0),
                ("columns", width, width))
        for bound, (axis, length, edge) in zip(self.bounds, axes, strict=True):
            value = edge if bound is None else round(bound * length) if isinstance(
                bound, float) else bound
            if not 0 <= value <= length:
                raise UtomError(f"--test-region {self.text}: {axis} {bound} lie outside {where} "
                                f"({height} rows × {width} columns)")
            box.append(value)
        if box[0] >= box[1] or box[2] >= box[3]:
            raise UtomError(f"--test-region {self.text}: is empty in {where} (rows "
                            f"{box[0]}:{box[1]}, columns {box[2]}:{box[3]})")
        if min(box[1] - box[0], box[3] - box[2]) < SMALLEST_REGION:
            raise UtomError(f"--test-region {self.text}: {box[1] - box[0]} rows × "
                            f"{box[3] - box[2]} columns is too thin to score (SSIM); a test "
                            f"region needs at least {SMALLEST_REGION} × {SMALLEST_REGION} pixels")
        return box[0], box[1], box[2], box[3]


def parse_region(text: str) -> RegionSpec:
    """``Y0:Y1,X0:X1``: rows then columns, each bound pixels or a fraction with a decimal point
    (0.4), either left out for the image's edge (``:`` is the whole axis)."""
    usage = (f"--test-region {text}: expected ROWS,COLUMNS such as 0:512,0.4:0.6 (pixels, or "
             "fractions with a decimal point; ':' for a whole axis)")
    axes = text.split(",")
    if len(axes) != 2 or any(axis.count(":") != 1 for axis in axes):
        raise UtomError(usage)
    bounds: list[Bound] = []
    for part in (p.strip() for axis in axes for p in axis.split(":")):
        try:
            value: Bound = None if not part else float(part) if "." in part else int(part)
        except ValueError:
            raise UtomError(usage) from None
        if value is not None and (value < 0 or (isinstance(value, float) and value > 1)):
            raise UtomError(f"--test-region {text}: {part} is neither a pixel index nor a "
                            "fraction between 0 and 1")
        bounds.append(value)
    return RegionSpec(text, (bounds[0], bounds[1], bounds[2], bounds[3]))


def _grown(box: Box, height: int, width: int, gap: int) -> Box:
    return max(0, box[0] - gap), min(height, box[1] + gap), max(0, box[2] - gap), min(width,
                                                                                    box[3] + gap)


def _meets(one: Box, other: Box) -> bool:
    return one[0] < other[1] and other[0] < one[1] and one[2] < other[3] and other[2] < one[3]


def training_boxes(height: int, width: int, held: list[Box]) -> list[Box]:
    """The image outside ``held`` as rectangles: the grid of every held box's edges, its free
    cells merged along rows, then runs of equal columns merged down."""
    ys = sorted({0, height, *(v for b in held for v in b[:2])})
    xs = sorted({0, width, *(v for b in held for v in b[2:])})
    boxes: list[Box] = []
    for y0, y1 in itertools.pairwise(ys):
        runs: list[tuple[int, int]] = []
        for x0, x1 in itertools.pairwise(xs):
            if any(_meets((y0, y1, x0, x1), b) for b in held):
                continue
            if runs and runs[-1][1] == x0:
                runs[-1] = (runs[-1][0], x1)
            else:
                runs.append((x0, x1))
        for x0, x1 in runs:
            above = next((i for i, b in enumerate(boxes) if b[1] == y0 and b[2:] == (x0, x1)),
                         None)
            if above is None:
                boxes.append((y0, y1, x0, x1))
            else:
                boxes[above] = (boxes[above][0], y1, x0, x1)
    return boxes


def _name(stem: str, role: str, box: Box) -> str:
    return f"{stem}_{role}_r{box[0]}-{box[1]}_c{box[2]}-{box[3]}.tif"


@dataclass
class HeldOut:
    """Test regions to cut out of one --a image, checked before anything is written; ``cut``
    writes the pieces into the run's data folder."""

    image: Path
    tests: list[tuple[RegionSpec, Box]]
    training: list[Box]
    dropped: list[Box]
    references: list[Path | None] = field(default_factory=list)
    reference_cut: list[bool] = field(default_factory=list)
    """Per reference: cut the region out of it (it covers the whole --a image) or use it whole."""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    formats: FormatTable | None = None
    """The table the image and references are read with (None: io's built-ins)."""

    def cut(self, data: TaskData, folder: Path) -> TaskData:
        """Write the training pieces, test regions and cut references as TIFFs into ``folder``
        (``regions.json`` records where each came from) and return the data that uses them."""
        folder.mkdir(parents=True, exist_ok=True)
        stem = image_stem(self.image, formats=self.formats)
        training = [self._copy(self.image, box, folder / _name(stem, "train", box), "a")
                    for box in self.training]
        tests, references = [], []
        for (_, box), reference, cut in zip(self.tests, self.references, self.reference_cut,
                                            strict=True):
            tests.append(self._copy(self.image, box, folder / _name(stem, "test", box), "test"))
            if reference is not None and cut:
                reference = self._copy(reference, box, folder / _name(
                    stem, "test", box).replace(".tif", "_reference.tif"), "reference")
            references.append(reference)
        write_text(folder / "regions.json", json.dumps(self.files, indent=1))
        return data.model_copy(update={"a": training, "test": tests, "reference": references,
                                       "notes": [*data.notes, *self.notes()]})

    def _copy(self, image: Path, box: Box, path: Path, role: str) -> Path:
        """``box`` of ``image`` (every plane and channel) as a TIFF, copied strip by strip."""
        source = open_image(image, formats=self.formats)
        try:
            info = source.info
            planes = info.shape[1] if len(info.shape) == 4 else 1
            shape = (*info.shape[:-2], box[1] - box[0], box[3] - box[2])
            rows = max(1, STRIP_VALUES // (info.channels * planes * shape[-1]))
            sink = writer_for(path).create(path, ImageInfo(shape, info.dtype, dict(
                info.pixel_size), info.unit, info.stack))
            try:
                for start in range(box[0], box[1], rows):
                    ys, xs = slice(start, min(start + rows, box[1])), slice(box[2], box[3])
                    lead = (slice(None),) * (len(shape) - 3)
                    out_rows = slice(ys.start - box[0], ys.stop - box[0])
                    sink.write((*lead, out_rows, slice(None)), source.read((*lead, ys, xs)))
                sink.commit()
            except BaseException:
                sink.abort()
                raise
        except OSError as err:
            raise DiskError.refused(err, path, outcome="nothing was trained") from None
        finally:
            source.close()
        self.files[path.name] = {"role": role, "specimen": str(image),
                                 "region": [list(box[:2]), list(box[2:])]}
        return path

    def notes(self) -> list[str]:
        """What the report and metrics.json say about the cut."""
        tests = "; ".join(f"rows {b[0]}:{b[1]}, columns {b[2]}:{b[3]} (--test-region {s.text})"
                          for s, b in self.tests)
        pieces = "; ".join(f"rows {b[0]}:{b[1]}, columns {b[2]}:{b[3]}" for b in self.training)
        notes = [f"Held out of {self.image}: {tests}, with {GUARD_GAP}-px guard gaps; domain A "
                 f"trains on the rest, {len(self.training)} piece(s): {pieces} (data/, "
                 "regions.json). No test pixel was trained on."]
        if self.dropped:
            notes.append("Left out, narrower than one training tile: " + "; ".join(
                f"rows {b[0]}:{b[1]}, columns {b[2]}:{b[3]}" for b in self.dropped))
        return notes

    def inputs(self) -> list[Path]:
        """The files the cut reads: the image and the references."""
        return [self.image, *(r for r in self.references if r is not None)]

    def record(self) -> dict[str, Any]:
        """The cut as metrics.json stores it."""
        return {"image": str(self.image), "gap": GUARD_GAP,
                "tests": [{"region": s.text, "rows": list(b[:2]), "columns": list(b[2:])}
                          for s, b in self.tests],
                "training": [{"rows": list(b[:2]), "columns": list(b[2:])}
                             for b in self.training],
                "left_out": [{"rows": list(b[:2]), "columns": list(b[2:])} for b in self.dropped]}


def hold_out(task: Task, a: list[Path], b: list[Path], regions: list[RegionSpec],
             references: list[Path], tile: int, formats: FormatTable | None = None) -> HeldOut:
    """Plan cutting ``regions`` out of the one --a image (read with ``formats``): refused when
    a region lies outside it, two regions (with their guard gaps) overlap, the image is also a
    --b image, or no training piece of at least one ``tile`` remains."""
    images = list_images(a, formats=formats)
    if len(images) != 1:
        raise UtomError(f"--test-region cuts one --a image; --a gives {len(images)}")
    image = images[0]
    if image.resolve() in {p.resolve() for p in list_images(b, formats=formats)}:
        raise UtomError(f"--test-region: {image} is also a --b image, so its test region "
                        "would be trained on")
    source = open_image(image, formats=formats)
    shape = source.info.shape
    source.close()
    height, width = shape[-2:]
    tests = [(spec, spec.resolve(height, width, str(image))) for spec in regions]
    grown = [_grown(box, height, width, GUARD_GAP) for _, box in tests]
    for i, (spec, _) in enumerate(tests):
        for other, box in tests[i + 1:]:
            if _meets(grown[i], box):
                raise UtomError(f"--test-region {spec.text} and {other.text} overlap (with "
                                f"their {GUARD_GAP}-px guard gap) in {image}")
    pieces = training_boxes(height, width, grown)
    kept = [p for p in pieces if p[1] - p[0] >= tile and p[3] - p[2] >= tile]
    if not kept:
        raise UtomError(f"--test-region: leaves no training piece of at least one {tile}-px "
                        f"tile in {image} ({height} × {width}, {GUARD_GAP}-px guard gaps)")
    plan = HeldOut(image, tests, kept, [p for p in pieces if p not in kept], formats=formats)
    _plan_references(plan, task, shape,
                     list_images(references, formats=formats) if references else [])
    return plan


def _plan_references(plan: HeldOut, task: Task, shape: tuple[int, ...],
                     references: list[Path]) -> None:
    """One reference per region, the whole --a image's size (cut like it) or the region's."""
    if not references:
        plan.references, plan.reference_cut = [None] * len(plan.tests), [False] * len(plan.tests)
        return
    if len(references) != len(plan.tests):
        raise UtomError(f"--reference: {len(references)} file(s) for {len(plan.tests)} "
                        "--test-region(s); give one reference per region")
    whole = (task.domain_b.channels, *shape[1:])
    for reference, (_, box) in zip(references, plan.tests, strict=True):
        source = open_image(reference, formats=plan.formats)
        found = source.info.shape
        source.close()
        region = (*whole[:-2], box[1] - box[0], box[3] - box[2])
        if found not in (whole, region):
            raise InputError(reference, f"shape {found} fits neither {plan.image.name} {whole} "
                                        f"nor its test region {region}")
        plan.references.append(reference)
        plan.reference_cut.append(found == whole)
