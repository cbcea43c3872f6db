"""Test-time views: predict a tile under flips and rotations, undo each, average.

A generator trained for a few thousand iterations is not equivariant to flips and rotations,
and its errors differ from view to view (on the real colorectal core: multicoloured speckle);
averaging the views keeps what they agree on. The views are the dihedral group of the square:

- 1: identity;
- 2: identity, left-right flip;
- 4: identity, left-right flip, up-down flip, both (= rotation by 180°) — no transposes;
- 8: the four above and their transposes (rotations by 90° and 270°, and the two diagonal
  flips).

XZ/YZ planes (``axial``) have a direction the others lack: z runs down the rows and the
generator learned it there, so views that transpose are left out and 8 views become the 4
that keep every axis.

This module imports nothing but the standard library (torch only for type checking), so the
napari plugin can read ``DEFAULT_VIEWS`` without loading torch, and ``export.bundle`` copies it
into a model package. Each view's
frozen norm statistics for tiled prediction: ``inference.view_statistics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

VIEW_COUNTS = (1, 2, 4, 8)
DEFAULT_VIEWS = 8
"""``utom predict``'s, ``utom run``'s and the napari widget's (measured: docs/results/views.md)."""


@dataclass(frozen=True)
class View:
    """Flip columns and/or rows, then transpose the last two axes, as asked."""

    flip_cols: bool = False
    flip_rows: bool = False
    transpose: bool = False

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) seen under this view."""
        dims = [d for d, on in ((-1, self.flip_cols), (-2, self.flip_rows)) if on]
        x = x.flip(dims) if dims else x
        return x.transpose(-1, -2) if self.transpose else x

    def undo(self, y: torch.Tensor) -> torch.Tensor:
        """A prediction of the viewed input, mapped back onto the input's pixel grid."""
        y = y.transpose(-1, -2) if self.transpose else y
        dims = [d for d, on in ((-1, self.flip_cols), (-2, self.flip_rows)) if on]
        return y.flip(dims) if dims else y


def dihedral(count: int, axial: bool = False) -> tuple[View, ...]:
    """The ``count`` views (1, 2, 4 or 8); ``axial`` planes (XZ/YZ) never transpose, so 8
    gives their 4."""
    if count not in VIEW_COUNTS:
        raise ValueError(f"views: expected one of {VIEW_COUNTS}, got {count}")
    flips = (View(), View(flip_cols=True), View(flip_rows=True),
             View(flip_cols=True, flip_rows=True))
    every = flips + tuple(View(v.flip_cols, v.flip_rows, transpose=True) for v in flips)
    return every[:min(count, 4) if axial else count]

