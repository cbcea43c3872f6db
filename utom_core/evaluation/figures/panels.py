"""Preview images for reports: [-1, 1] arrays → 8-bit panels and the paper's overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from utom_core.io.atomic import write_atomic

LABEL_HEIGHT = 14
"""Pixels above each panel image reserved for a one-line label (Pillow's default font)."""
LINE_HEIGHT = 11
"""Pixels of each further line of a label wrapped to its image's width."""
MARK, MARK_EDGE = (255, 215, 0), (0, 0, 0)
"""Colour of a marked line (the line profile's) and of its 1-px edges: seen on any image."""


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 (clipped), the inverse of a dtype-range normalisation."""
    return np.clip(np.rint((np.asarray(unit, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def to_display(image: np.ndarray) -> np.ndarray:
    """A (C, H, W) image on the [-1, 1] scale → (H, W, 3) uint8 RGB.

    One channel is shown gray, two as a magenta/green composite (first magenta), three as
    RGB, more than three as their first three. A 2D (H, W) array is taken as one channel.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {image.shape}")
    pixels = _to_uint8(image)
    channels = pixels.shape[0]
    if channels == 1:
        return np.repeat(pixels[0][..., None], 3, axis=-1)
    if channels == 2:
        return np.stack([pixels[0], pixels[1], pixels[0]], axis=-1)
    return np.moveaxis(pixels[:3], 0, -1).copy()


def _stretch(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Single-channel (or channel-mean) image → [0, 1] between two percentiles."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = image.mean(axis=0)
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros_like(image)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def magenta_green_overlay(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The paper's overlay: prediction magenta, reference green, white where both are bright.

    Each input is contrast-stretched on its own (0.5–99.5 percentiles), so the overlay compares
    structure, not absolute intensity. Returns (H, W, 3) uint8.
    """
    pred, ref = _stretch(prediction), _stretch(reference)
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape}, reference {ref.shape}")
    rgb = np.stack([pred, ref, pred], axis=-1)
    return np.rint(rgb * 255.0).astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept display-ready (H, W, 3) uint8 as is; convert [-1, 1] (C, H, W) arrays."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return image
    return to_display(image)


def wrap(draw: ImageDraw.ImageDraw, text: str, width: int) -> list[str]:
    """``text`` in lines that fit ``width`` pixels, broken between words (a longer word keeps
    a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def mark_line(canvas: np.ndarray, row: int, columns: slice) -> None:
    """Draw a horizontal line with end ticks over an (H, W, 3) uint8 image, in place."""
    height, width = canvas.shape[:2]
    if not 0 <= row < height:
        return
    start, stop = max(0, columns.start), min(width, columns.stop)
    for edge in (row - 1, row + 1):
        if 0 <= edge < height:
            canvas[edge, start:stop] = MARK_EDGE
    canvas[row, start:stop] = MARK
    for x in (start, stop - 1):
        canvas[max(0, row - 4):row + 5, max(0, x - 1):x + 2] = MARK_EDGE
        canvas[max(0, row - 3):row + 4, x] = MARK


def save_panel(
    path: Path, images: list[np.ndarray], labels: list[str] | None = None, gap: int = 4,
    line: tuple[int, slice] | None = None,
) -> Path:
    """Side-by-side PNG of images (e.g. input | output | reference), written atomically.

    Images are [-1, 1] (C, H, W) arrays or display-ready (H, W, 3) uint8 (e.g. an overlay);
    shorter ones are top-aligned on a white background. Labels go above each image, wrapped
    to its width. ``line`` (row, columns) is marked on every image (a line profile's path).
    """
    if not images:
        raise ValueError("save_panel needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    tiles = [_as_rgb(image).copy() for image in images]
    if line is not None:
        for tile in tiles:
            mark_line(tile, *line)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [wrap(measure, label, tile.shape[1] - 2)
               for label, tile in zip(labels or [], tiles, strict=False)]
    top = LABEL_HEIGHT + LINE_HEIGHT * (max(map(len, wrapped)) - 1) if labels else 0
    height = top + max(tile.shape[0] for tile in tiles)
    width = sum(tile.shape[1] for tile in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for index, tile in enumerate(tiles):
        canvas.paste(Image.fromarray(tile), (x, top))
        for number, text in enumerate(wrapped[index] if labels else []):
            draw.text((x + 2, 1 + LINE_HEIGHT * number), text, fill="black")
        x += tile.shape[1] + gap
    path = Path(path)
    write_atomic(path, lambda handle: canvas.save(handle, format="PNG"))
    return path
