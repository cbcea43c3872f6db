"""A domain's background colour: the mean of its images where their content map is 0.

Trained for the demo budget, stain-he kept its background near the top of the tanh output
(median 247 of 255 on the held-out band, a quarter of it at the B range's ceiling 249, where
the gradients through tanh vanish) against the scanner's slightly magenta (241, 238, 241):
no model learnt the tint. The background term (``methods.losses.background_term``) asks for
this colour outright.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from utom_core.data.images import COLOUR_PIXELS, COLOUR_WINDOW, DomainImages
from utom_core.domain import Normalisation
from utom_core.saliency import SaliencyOperator

MIN_BACKGROUND = 0.01
"""Share of the sampled pixels that must be background (weights 1 − T) for a colour to be
measured on them."""

Background = tuple[DomainImages, Normalisation, SaliencyOperator]
"""A domain's images with the normalisation and content map they are judged by."""


def lattice_units(side: Background) -> Callable[[], Iterator[np.ndarray]]:
    """The [-1, 1]-scale windows of the fixed lattice the colours are measured on, read anew
    at each call."""
    images, normalisation, _ = side
    return lambda: (normalisation.apply(raw)
                    for raw in images.lattice_windows(COLOUR_PIXELS, COLOUR_WINDOW))


def background_colour(images: DomainImages, normalisation: Normalisation,
                      saliency: SaliencyOperator) -> tuple[float, ...] | None:
    """Per channel, the [-1, 1]-scale mean of the sampled pixels weighted by 1 − T (None
    where the sample holds no background)."""
    found = background_pixels(lattice_units((images, normalisation, saliency))(), saliency)
    if found is None:
        return None
    values, weights = found
    return tuple(float(v) for v in values @ weights / weights.sum())


def background_pixels(units: Iterable[np.ndarray], saliency: SaliencyOperator
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """The pixels of (C, H, W) [-1, 1]-scale images as (C, N) values and their (N,) weights
    1 − T (None where less than ``MIN_BACKGROUND`` of them is background: a colour measured
    on a sliver of glass would be one of its few pixels)."""
    values, weights = [], []
    for unit in units:
        with torch.no_grad():
            background = 1.0 - saliency(torch.from_numpy(unit)[None])[0, 0].double().numpy()
        values.append(unit.reshape(unit.shape[0], -1).astype(np.float64))
        weights.append(background.ravel())
    total = sum(float(w.sum()) for w in weights)
    if not weights or total < max(1.0, MIN_BACKGROUND * sum(w.size for w in weights)):
        return None
    return np.concatenate(values, axis=1), np.concatenate(weights)


def background_median(units: Iterable[np.ndarray], saliency: SaliencyOperator
                      ) -> tuple[float, ...] | None:
    """Per channel, the median of the pixels weighted by 1 − T: the colour of the bare glass,
    which the pale rims of tissue that the mean takes in do not move."""
    found = background_pixels(units, saliency)
    if found is None:
        return None
    values, weights = found
    medians = []
    for channel in values:
        order = np.argsort(channel, kind="stable")
        cumulative = np.cumsum(weights[order])
        medians.append(float(channel[order][np.searchsorted(cumulative, cumulative[-1] / 2)]))
    return tuple(medians)


def background_colours(a: Background, b: Background, device: torch.device
                       ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A's and B's ``background_colour`` as tensors on ``device`` (what the step needs)."""
    def on_device(colour: tuple[float, ...] | None) -> torch.Tensor | None:
        return None if colour is None else torch.tensor(colour, device=device)

    return on_device(background_colour(*a)), on_device(background_colour(*b))
