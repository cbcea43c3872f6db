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
    """``value`` in ``unit`` as micrometers; None for unknown units or meaningless values."""
    factor = MICROMETERS_PER_UNIT.get((unit or "").strip().lower())
    return None if factor is None or not value or not math.isfinite(value) else value * factor
