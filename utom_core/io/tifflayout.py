"""Where canonical pixels go in a TIFF written by utom, and the tifffile keywords that declare
its axes and pixel size (ImageJ, OME or plain)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from utom_core.io.base import ImageInfo
from utom_core.io.units import usable

IMAGEJ_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
IMAGEJ_MAX_BYTES = 2**32 - 2**25
"""ImageJ TIFFs are classic (32-bit offsets); larger outputs are written as BigTIFF."""


def _layout(info: ImageInfo) -> tuple[str, bool]:
    """File axes for canonical (C, [Z], Y, X) and whether channels are RGB samples."""
    rgb = info.channels == 3 and info.dtype == np.uint8
    prefix = "Z" if len(info.shape) == 4 else ""
    if rgb:
        return prefix + "YXS", True
    return prefix + ("C" if info.channels > 1 else "") + "YX", False


HYPERSTACK_AXES = ("Z", "T", "TZ")
"""Stack axes an ImageJ or OME hyperstack can declare, in their order there."""


def _declared(info: ImageInfo, axes: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """The file's axes and shape with canonical z unfolded into the input's stack axes, the
    same bytes: a TZYX input is written as TZYX, its time points never as z slices. Pages of
    no declared meaning (Q, I) and stacks a hyperstack cannot declare stay one z axis."""
    letters = "".join("Z" if a in "QI" else a for a, _ in info.stack)
    if "Z" not in axes or letters not in HYPERSTACK_AXES:
        return axes, shape
    at = axes.index("Z")
    sizes = tuple(n for _, n in info.stack)
    return axes[:at] + letters + axes[at + 1:], shape[:at] + sizes + shape[at + 1:]


@dataclass(frozen=True)
class FileLayout:
    """How canonical (C, [Z], Y, X) pixels lie in a TIFF: its axes, the canonical axis of each
    (``order``; without C for one channel, which is written without a channel axis), its shape,
    and the axes and shape declared (the input's T/Z stack axes unfolded)."""

    axes: str
    order: list[int]
    shape: tuple[int, ...]
    file_axes: str
    file_shape: tuple[int, ...]
    rgb: bool

    @property
    def has_channels(self) -> bool:
        return "C" in self.axes or "S" in self.axes

    @property
    def photometric(self) -> str:
        return "rgb" if self.rgb else "minisblack"

    @classmethod
    def of(cls, info: ImageInfo) -> FileLayout:
        axes, rgb = _layout(info)
        canonical = "C" + info.spatial_axes.upper()
        order = [canonical.index("C" if a == "S" else a) for a in axes]
        shape = tuple(info.shape[i] for i in order)
        if "C" not in axes and "S" not in axes:
            order = [i - 1 for i in order]
        return cls(axes, order, shape, *_declared(info, axes, shape), rgb)


def tiff_metadata(info: ImageInfo, axes: str, style: str) -> dict[str, Any]:
    """tifffile keyword arguments carrying axes and pixel size for an OME, ImageJ or plain TIFF."""
    size, _ = usable(info.pixel_size)  # an ImageInfo made by hand is not checked as read
    metadata: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {"ome": True, "bigtiff": True} if style == "ome" else (
        {"imagej": True} if style == "imagej" else {"bigtiff": True})  # tiled: see io.ometiff
    if style == "ome":
        for axis, value in size.items():
            metadata[f"PhysicalSize{axis.upper()}"] = value
            metadata[f"PhysicalSize{axis.upper()}Unit"] = "µm"
    elif "x" in size and "y" in size:
        per_unit = 1.0 if style == "imagej" else 1e4  # ImageJ: per micrometer; else per cm
        kwargs["resolution"] = (per_unit / size["x"], per_unit / size["y"])
        if style == "imagej":
            metadata["unit"] = "um"
            if "z" in size:
                metadata["spacing"] = size["z"]
        else:
            kwargs["resolutionunit"] = "CENTIMETER"
    kwargs["metadata"] = metadata
    return kwargs
