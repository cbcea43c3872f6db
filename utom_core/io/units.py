"""Physical units: every reader reports pixel sizes in micrometers."""

from __future__ import annotations

import math

MICROMETERS_PER_UNIT = {
    "micrometer": 1.0, "micron": 1.0, "microns": 1.0, "um": 1.0, "µm": 1.0, "μm": 1.0,
    "\\u00b5m": 1.0, "nanometer": 1e-3, "nm": 1e-3, "millimeter": 1e3, "mm": 1e3,
    "centimeter": 1e4, "cm": 1e4, "meter": 1e6, "m": 1e6, "inch": 25400.0,
}
"""Length units found in TIFF, OME and OME-Zarr metadata."""


def micrometers(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as micrometers (also a meaningless one, which ``usable`` drops
    with a note); None for unknown units."""
    factor = MICROMETERS_PER_UNIT.get((unit or "").strip().lower())
    return None if factor is None else value * factor


def number(text: object) -> float:
    """A metadata value as a float; NaN for text that is not a number (dropped by ``usable``)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def usable(sizes: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """The pixel sizes that are positive finite lengths, and notes naming the others: a size of
    0, below 0 or NaN in a file's metadata is a writer's mistake that must not reach an output
    (OME-XML requires positive sizes) nor a division."""
    kept = {axis: size for axis, size in sizes.items() if math.isfinite(size) and size > 0}
    dropped = [f"pixel size {axis} = {size:g} µm is not a positive length; left out"
               for axis, size in sizes.items() if axis not in kept]
    return kept, dropped
