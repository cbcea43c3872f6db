"""Line profiles: the line crosses the reference's finest bright structure, and is plotted."""

from __future__ import annotations

import numpy as np
from PIL import Image

from utom_core.evaluation.figures.profiles import (
    HALF_LENGTH,
    fine_structure_line,
    profile,
    save_profile_plot,
)


def test_the_line_crosses_a_small_focus_not_a_large_bright_blob():
    plane = np.full((96, 128), -0.8, np.float32)
    plane[10:60, 10:60] = 0.9  # a big nucleus: bright, but flat inside
    plane[70:72, 90:92] = 0.5  # a 2-px focus: dimmer, but stands out from its surroundings
    row, columns = fine_structure_line(plane[None])
    assert row in (70, 71)
    assert columns.start <= 90 < columns.stop
    assert columns.stop - columns.start == 2 * HALF_LENGTH + 1
    assert profile(plane[None], row, columns).max() == np.float32(0.5)


def test_the_line_stays_inside_a_small_image():
    plane = np.zeros((20, 20), np.float32)
    plane[3, 2] = 1.0
    row, columns = fine_structure_line(plane)
    assert (row, columns.start) == (3, 0) and columns.stop == 20


def test_profile_plot_is_a_png(tmp_path):
    curves = {name: np.linspace(-1, 1, 65) * k for k, name in
              enumerate(("input", "prediction", "reference"), start=1)}
    save_profile_plot(tmp_path / "p.png", curves, "line profile")
    with Image.open(tmp_path / "p.png") as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels == (200, 0, 200)).all(axis=-1).any()  # the prediction's magenta is drawn
