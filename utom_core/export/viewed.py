"""The model a package holds: the generator under the test-time views ``utom predict`` averages.

``utom predict`` predicts each tile under flips and rotations, undoes them and averages
(``inference.views``); a zoo consumer runs the package's model once, so the averaging has to
be inside the model for the zoo to get what ``utom predict`` writes. This module needs torch
and ``inference.views`` only: ``export.bundle`` copies it into the package's architecture file.
"""

from __future__ import annotations

import torch

from utom_core.inference.views import dihedral


class ViewAveraged(torch.nn.Module):
    """``generator``'s mean prediction over ``views`` views (``axial``: XZ/YZ planes, no
    transposes), summed in float64 in view order as ``utom predict`` sums them."""

    def __init__(self, generator: torch.nn.Module, views: int, axial: bool) -> None:
        super().__init__()
        self.generator = generator
        self.views = dihedral(views, axial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for view in self.views:
            total = total + view.undo(self.generator(view.apply(x))).double()
        return (total / len(self.views)).float()
