"""The user's own files for ``utom run``: made unpaired, and checked before anything trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.errors import InputError, UtomError
from utom_core.inference.fidelity import maps_made
from utom_core.inference.files import distinct_outputs, output_name
from utom_core.io import FormatTable, list_images, open_image
from utom_core.run_folders import PREDICTION_DIR, refuse_inputs_inside
from utom_core.task import Task, TaskData


def user_data(a: list[Path], b: list[Path], test: list[Path], reference: list[Path],
              rng: np.random.Generator, formats: FormatTable | None = None) -> TaskData:
    """The user's files, made unpaired: of any aligned A/B pair, only one side is kept
    (``formats`` reads them: None, io's built-ins)."""
    a_files, b_files = list_images(a, formats=formats), list_images(b, formats=formats)
    notes = ["user data"]
    if len(a_files) == len(b_files) and len(a_files) > 1 and all(
        _same_plane_shape(x, y, formats) for x, y in zip(a_files, b_files, strict=True)
    ):
        keep_a = rng.permutation(len(a_files)) < (len(a_files) + 1) // 2
        a_files = [p for p, k in zip(a_files, keep_a, strict=True) if k]
        b_files = [p for p, k in zip(b_files, keep_a, strict=True) if not k]
        notes.append("--a and --b looked like aligned pairs (same count and shapes): one side "
                     f"of each pair was kept at random ({len(a_files)} A, {len(b_files)} B)")
    test_files = list_images(test, formats=formats) if test else []
    if set(a_files) & set(test_files):
        raise UtomError("--test images must be held out of --a")
    references: list[Path | None] = (list(list_images(reference, formats=formats))
                                     if reference else [])
    if references and len(references) != len(test_files):
        raise UtomError(f"--reference: {len(references)} file(s) for {len(test_files)} --test "
                        "image(s); give one reference per test image")
    return TaskData(a=a_files, b=b_files, test=test_files,
                    reference=references or [None] * len(test_files), notes=notes)


def _same_plane_shape(x: Path, y: Path, formats: FormatTable | None) -> bool:
    sx, sy = open_image(x, formats=formats), open_image(y, formats=formats)
    try:
        return sx.info.shape[1:] == sy.info.shape[1:]
    finally:
        sx.close()
        sy.close()


def check_user_data(task: Task, data: TaskData, out: Path, more: list[Path] | None = None,
                    formats: FormatTable | None = None) -> None:
    """Refuse an --out that is or holds an input (``more``: inputs besides ``data``'s); open
    every test image and reference (with ``formats``) before anything is trained, so a bad
    one is refused in seconds, not after the training; so are tests whose predictions or
    fidelity maps would share a file."""
    refuse_inputs_inside(out, [*data.a, *data.b, *data.test, *(r for r in data.reference if r),
                               *(more or [])])
    outputs = []
    for test, reference in zip(data.test, data.reference, strict=True):
        source = open_image(test, formats=formats)
        shape = source.info.shape
        outputs.append((test, out / PREDICTION_DIR / output_name(source, formats=formats)))
        source.close()
        if shape[0] != task.domain_a.channels:
            raise InputError(test, f"has {shape[0]} channel(s), the {task.domain_a.name} "
                                   f"domain expects {task.domain_a.channels}")
        if reference is None:
            continue
        source = open_image(reference, formats=formats)
        found = source.info.shape
        source.close()
        if found != (task.domain_b.channels, *shape[1:]):
            raise InputError(reference, f"shape {found} does not fit test image {test.name} "
                                        f"(expected {(task.domain_b.channels, *shape[1:])})")
    distinct_outputs(outputs, maps_made(task.slicing), formats)  # and utom run's maps
