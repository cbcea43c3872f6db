"""The preview figures of one evaluated image: input | prediction | reference | overlay, and a
line profile through the reference's finest bright structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.evaluation.base import Sample
from utom_core.evaluation.figures.panels import magenta_green_overlay, save_panel
from utom_core.evaluation.figures.profiles import fine_structure_line, profile, save_profile_plot


def display_plane(image: np.ndarray) -> np.ndarray:
    """A 2D view of an image for previews: volumes show their middle XZ plane."""
    return image[:, :, image.shape[2] // 2, :] if image.ndim == 4 else image


def save_previews(sample: Sample, stem: Path) -> None:
    """``STEM_panel.png`` and, with a reference, ``STEM_profile.png``."""
    views = [display_plane(sample.input)] if sample.input is not None else []
    labels = ["input"] if views else []
    views.append(display_plane(sample.prediction))
    labels.append("prediction")
    line = None
    if sample.reference is not None:
        reference = display_plane(sample.reference)
        views += [reference, magenta_green_overlay(display_plane(sample.prediction), reference)]
        labels += ["reference", "overlay: prediction magenta, reference green, both white"]
        line = _line_profile(sample, reference, stem.with_name(stem.name + "_profile.png"))
    save_panel(stem.with_name(stem.name + "_panel.png"), views, labels, line=line)


def _line_profile(sample: Sample, reference: np.ndarray, path: Path) -> tuple[int, slice]:
    """Input (on the target's scale, where it has one), prediction and reference along a line
    through the reference's finest bright structure; returns the line, for the panel's mark."""
    row, columns = fine_structure_line(reference)
    planes = {"input": sample.baseline, "prediction": sample.prediction}
    curves = {name: profile(display_plane(image), row, columns)
              for name, image in planes.items() if image is not None}
    curves["reference"] = profile(reference, row, columns)
    save_profile_plot(path, curves, f"line profile: row {row}, columns {columns.start} to "
                                    f"{columns.stop - 1} (the yellow line on the panel)",
                      first_column=columns.start)
    return row, columns
