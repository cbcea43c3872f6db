"""A domain's background colour: the mean of its images where their content map is 0.

Trained for the demo budget, stain-he kept its background near the top of the tanh output
(median 247 of 255 on the held-out band, a quarter of it at the B range's ceiling 249, where
the gradients through tanh vanish) against the scanner's slightly magenta (241, 238, 241):
no model learnt the tint. The background term (``methods.losses.background_term``) asks for
this colour outright.
"""

from __future__ import annotations

import numpy as np
import torch

from utom_core.data.images import COLOUR_PIXELS, COLOUR_WINDOW, DomainImages
from utom_core.domain import Normalisation
from utom_core.saliency import SaliencyOperator


def background_colour(images: DomainImages, normalisation: Normalisation,
                      saliency: SaliencyOperator) -> tuple[float, ...] | None:
    """Per channel, the [-1, 1]-scale mean of the sampled pixels weighted by 1 − T (None
    where the sample holds no background)."""
    total = np.zeros(images.domain.channels)
    weight = 0.0
    for raw in images.lattice_windows(COLOUR_PIXELS, COLOUR_WINDOW):
        unit = normalisation.apply(raw)
        with torch.no_grad():
            background = 1.0 - saliency(torch.from_numpy(unit)[None])[0, 0].double().numpy()
        total += (unit * background).reshape(unit.shape[0], -1).sum(axis=1)
        weight += float(background.sum())
    if weight < 1.0:
        return None
    return tuple(float(v) for v in total / weight)


Background = tuple[DomainImages, Normalisation, SaliencyOperator]
"""A domain's images with the normalisation and content map they are judged by."""


def background_colours(a: Background, b: Background, device: torch.device
                       ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A's and B's ``background_colour`` as tensors on ``device`` (what the step needs)."""
    def on_device(colour: tuple[float, ...] | None) -> torch.Tensor | None:
        return None if colour is None else torch.tensor(colour, device=device)

    return on_device(background_colour(*a)), on_device(background_colour(*b))
