"""Learning curves drawn with Pillow: one panel per metric, one line per series."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from utom_core.evaluation.figures.bars import COLOURS
from utom_core.io.atomic import write_atomic

Points = list[tuple[float, float]]
WIDTH, PANEL, MARGIN, LEFT = 560, 170, 28, 64


def curve_plot(path: Path, title: str, panels: dict[str, dict[str, Points]]) -> None:
    """Panels stacked top to bottom, each with its own value range; x is shared (iterations
    or minutes). Non-finite values (PSNR of identical images) are left out."""
    panels = {name: {label: [(x, y) for x, y in points if math.isfinite(y)]
                     for label, points in series.items()} for name, series in panels.items()}
    xs = [x for series in panels.values() for points in series.values() for x, _ in points]
    if not xs:
        return
    x_low, x_high = min(xs), max(xs)
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    height = MARGIN + len(panels) * (PANEL + MARGIN) + 16 * len(labels) + MARGIN
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 6), title, fill="black")
    for row, (name, series) in enumerate(panels.items()):
        top = MARGIN + row * (PANEL + MARGIN)
        _panel(draw, top, name, series, labels, (x_low, x_high))
    for index, label in enumerate(labels):
        y = height - MARGIN - 16 * (len(labels) - index)
        draw.rectangle([LEFT, y, LEFT + 10, y + 10], fill=COLOURS[index % len(COLOURS)])
        draw.text((LEFT + 16, y), label, fill="black")
    write_atomic(Path(path), lambda handle: image.save(handle, format="PNG"))


def _panel(draw: ImageDraw.ImageDraw, top: int, name: str, series: dict[str, Points],
           labels: list[str], x_range: tuple[float, float]) -> None:
    ys = [y for points in series.values() for _, y in points]
    right, bottom = WIDTH - MARGIN, top + PANEL
    draw.rectangle([LEFT, top, right, bottom], outline=(180, 180, 180))
    draw.text((LEFT + 4, top + 2), name, fill="black")
    if not ys:
        return
    low, high = min(ys), max(ys)
    span, x_span = (high - low) or 1.0, (x_range[1] - x_range[0]) or 1.0
    draw.text((4, top), f"{high:.4g}", fill="black")
    draw.text((4, bottom - 10), f"{low:.4g}", fill="black")
    draw.text((LEFT, bottom + 2), f"{x_range[0]:.4g}", fill="black")
    draw.text((right - 40, bottom + 2), f"{x_range[1]:.4g}", fill="black")

    def at(x: float, y: float) -> tuple[float, float]:
        return (LEFT + (x - x_range[0]) / x_span * (right - LEFT),
                bottom - 4 - (y - low) / span * (PANEL - 20))

    for label, points in series.items():
        colour = COLOURS[labels.index(label) % len(COLOURS)]
        corners = [at(x, y) for x, y in points]
        if len(corners) > 1:
            draw.line(corners, fill=colour, width=2)
        for cx, cy in corners:
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
