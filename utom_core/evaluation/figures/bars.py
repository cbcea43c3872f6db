"""Small bar-and-dot plots drawn with Pillow (no plotting library needed for bench figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from utom_core.io.atomic import write_atomic

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 140, 140)]
BAR, GAP, HEIGHT, MARGIN = 26, 18, 260, 40


def bar_plot(path: Path, title: str, groups: dict[str, dict[str, list[float]]]) -> None:
    """One group of bars per task (one bar per method: mean, with a dot per seed)."""
    methods = sorted({m for values in groups.values() for m in values})
    finite = [v for values in groups.values() for vs in values.values() for v in vs
              if np.isfinite(v)]
    if not finite:
        return
    low, high = min(0.0, min(finite)), max(finite)
    span = (high - low) or 1.0
    width = MARGIN * 2 + len(groups) * (len(methods) * BAR + GAP)
    image = Image.new("RGB", (max(width, 320), HEIGHT + MARGIN * 2 + 16 * len(methods)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 8), f"{title} (range {low:.3g} to {high:.3g})", fill="black")

    def y_of(value: float) -> float:
        return MARGIN + HEIGHT - (value - low) / span * HEIGHT

    x = MARGIN
    for task, values in groups.items():
        for index, method in enumerate(methods):
            colour = COLOURS[index % len(COLOURS)]
            seeds = [v for v in values.get(method, []) if np.isfinite(v)]
            if seeds:
                draw.rectangle([x + 2, y_of(float(np.mean(seeds))), x + BAR - 2, y_of(low)],
                               fill=colour)
                for v in seeds:
                    cy = y_of(v)
                    draw.ellipse([x + BAR / 2 - 3, cy - 3, x + BAR / 2 + 3, cy + 3],
                                 outline="black")
            x += BAR
        draw.text((x - len(methods) * BAR, MARGIN + HEIGHT + 4), task[:14], fill="black")
        x += GAP
    for index, method in enumerate(methods):
        y = MARGIN * 2 + HEIGHT + 16 * index
        draw.rectangle([MARGIN, y, MARGIN + 10, y + 10], fill=COLOURS[index % len(COLOURS)])
        draw.text((MARGIN + 16, y), method, fill="black")
    write_atomic(Path(path), lambda handle: image.save(handle, format="PNG"))
