"""Line profiles through fine structure: input, prediction and reference along one line.

The paper judges super-resolution by intensity profiles across fine structures; metrics average
such detail away. The line is chosen on the reference, where a small bright structure stands
out most from its neighbourhood, so it crosses the detail a restoration should recover.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from utom_core.io.atomic import write_atomic

HALF_LENGTH = 32
"""Pixels on each side of the chosen structure."""
NEIGHBOURHOOD = 9
"""Box size whose mean a structure must exceed (about twice a fine focus)."""
COLOURS = {"input": (140, 140, 140), "prediction": (200, 0, 200), "reference": (0, 150, 0)}
WIDTH, HEIGHT, LEFT, TOP, MARGIN = 520, 240, 48, 40, 24
TICKS = 5
Y_LABEL = "intensity, on the target domain's [-1, 1] scale"
SCALE_NOTE = ("-1 and +1: the 0.5th and 99.8th percentiles of the target domain's training "
              "pixels")


def fine_structure_line(reference: np.ndarray) -> tuple[int, slice]:
    """Row and column range of a horizontal line through the reference's most prominent small
    bright structure (the channel mean of a (C, H, W) or (H, W) plane)."""
    plane = np.asarray(reference, dtype=np.float32)
    plane = plane.mean(axis=0) if plane.ndim == 3 else plane
    tensor = torch.from_numpy(plane)[None, None]
    local = F.avg_pool2d(tensor, NEIGHBOURHOOD, stride=1, padding=NEIGHBOURHOOD // 2,
                         count_include_pad=False)
    prominence = (tensor - local)[0, 0].numpy()
    border = NEIGHBOURHOOD
    if min(plane.shape) > 4 * border:  # lines at the very edge are cut short
        prominence = prominence[border:-border, border:-border]
    else:
        border = 0
    peak_row, peak_col = np.unravel_index(int(np.argmax(prominence)), prominence.shape)
    row, col = int(peak_row) + border, int(peak_col) + border
    start = max(0, col - HALF_LENGTH)
    return row, slice(start, min(plane.shape[1], start + 2 * HALF_LENGTH + 1))


def profile(image: np.ndarray, row: int, columns: slice) -> np.ndarray:
    plane = np.asarray(image, dtype=np.float32)
    plane = plane.mean(axis=0) if plane.ndim == 3 else plane
    return plane[row, columns]


def save_profile_plot(path: Path, curves: dict[str, np.ndarray], title: str,
                      first_column: int = 0) -> None:
    """A PNG line plot of equally long 1D curves (named as in ``COLOURS``) with value and
    column axes; x runs over image columns from ``first_column``."""
    values = np.concatenate(list(curves.values()))
    low, high = float(values.min()), float(values.max())
    span = (high - low) or 1.0
    length = max(len(c) for c in curves.values())
    image = Image.new("RGB", (LEFT + WIDTH + MARGIN, TOP + HEIGHT + 3 * MARGIN + 24), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 6), title, fill="black")
    draw.text((4, TOP - 14), Y_LABEL, fill="black")
    right, bottom = LEFT + WIDTH, TOP + HEIGHT
    draw.rectangle([LEFT, TOP, right, bottom], outline=(200, 200, 200))

    def point(index: float, value: float) -> tuple[float, float]:
        return LEFT + index / max(length - 1, 1) * WIDTH, bottom - (value - low) / span * HEIGHT

    for tick in np.linspace(0, 1, TICKS):
        value, index = low + tick * span, tick * (length - 1)
        _, y = point(0, value)
        draw.line([LEFT - 4, y, LEFT, y], fill="black")
        draw.text((8, y - 5), f"{value:.2f}", fill="black")
        x, _ = point(index, low)
        draw.line([x, bottom, x, bottom + 4], fill="black")
        draw.text((x - 8, bottom + 6), str(first_column + round(index)), fill="black")
    draw.text((LEFT + WIDTH // 2 - 60, bottom + 18), "image column (pixels)", fill="black")
    for name, curve in curves.items():
        draw.line([point(i, float(v)) for i, v in enumerate(curve)],
                  fill=COLOURS.get(name, (0, 0, 0)), width=2)
    x = LEFT
    for name in curves:
        y = bottom + 2 * MARGIN + 8
        draw.rectangle([x, y, x + 10, y + 10], fill=COLOURS.get(name, (0, 0, 0)))
        draw.text((x + 14, y - 1), name, fill="black")
        x += 100
    draw.text((LEFT, bottom + 2 * MARGIN + 26), SCALE_NOTE, fill="black")
    write_atomic(Path(path), lambda handle: image.save(handle, format="PNG"))
