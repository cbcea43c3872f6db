"""White balance: one gain per output channel that gives a model's background the target
images' background colour.

Trained for the demo budget, stain-he models paint the background of images they have not
seen near tanh's ceiling (median 247 of 255 on the held-out band) against the scanner's
slightly magenta glass (241, 238, 241), while on their training images they paint it almost
right (240, 238, 239): the error is one of generalisation, and it shows on held-out images
only. The background term (``lambda_background``) that asks for the colour costs tissue
colour; a von Kries gain after the network costs none. Each saved model's generator predicts
the run's validation images (no reference is used; without them, the training images) and the
gain maps the median of its background onto the median of the target images' background.
Bright backgrounds only: a gain moves white and keeps black, and a dark background's level is
its noise floor, which a gain would blow up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from utom_core.data.background import Background, background_median
from utom_core.data.images import COLOUR_PIXELS, COLOUR_WINDOW
from utom_core.domain import Domain, Normalisation, Polarity
from utom_core.networks.base import Generator
from utom_core.saliency import SaliencyOperator
from utom_core.training.validation import whole_prediction


@dataclass(frozen=True)
class Direction:
    """What one direction's gains are fitted on."""

    inputs: Callable[[], Iterable[np.ndarray]]
    """The (C, H, W) [-1, 1]-scale images its generator predicts for the fit."""
    target_norm: Normalisation
    target_saliency: SaliencyOperator
    colour: tuple[float, ...]
    """The target images' background colour on the [-1, 1] scale."""


def raw_value(unit: tuple[float, ...], norm: Normalisation) -> list[float]:
    """[-1, 1]-scale channel values in raw units (unrounded)."""
    return [(u + 1.0) / 2.0 * (high - low) + low
            for u, low, high in zip(unit, norm.low, norm.high, strict=True)]


def output_gains(generator: Generator, direction: Direction, device: torch.device
                 ) -> tuple[float, ...] | None:
    """Per channel, the target colour over the background median of the generator's
    predictions, in raw units (None: the predictions hold no background, or a black one)."""
    was_training = generator.training
    generator.eval()
    try:
        predicted = background_median(
            (whole_prediction(generator, unit, generator.size_multiple, device)
             for unit in direction.inputs()), direction.target_saliency)
    finally:
        generator.train(was_training)
    if predicted is None:
        return None
    made = raw_value(predicted, direction.target_norm)
    wanted = raw_value(direction.colour, direction.target_norm)
    if min(made) <= 0 or min(wanted) <= 0:
        return None
    return tuple(w / m for w, m in zip(wanted, made, strict=True))


def _lattice(side: Background) -> Callable[[], Iterable[np.ndarray]]:
    images, norm, _ = side
    return lambda: (norm.apply(raw) for raw in images.lattice_windows(COLOUR_PIXELS,
                                                                      COLOUR_WINDOW))


class WhiteBalance:
    """The gains of every saved generator whose target background is bright, fitted once per
    iteration whatever the number of files saved then (model, checkpoint, best model)."""

    def __init__(self, directions: dict[str, Direction], device: torch.device) -> None:
        self.directions, self.device = directions, device
        self._fitted: tuple[int, dict[str, list[float]]] | None = None

    @classmethod
    def of_run(cls, domains: tuple[Domain, Domain], a: Background, b: Background,
               held_out: list[np.ndarray], device: torch.device) -> WhiteBalance:
        """Directions "ab" (fitted on ``held_out``, raw A images, where given, else on A's
        training images) and "ba" (on B's), where the target is bright and shows background."""
        directions: dict[str, Direction] = {}
        norm_a = a[1]
        inputs_ab = ((lambda: (norm_a.apply(raw) for raw in held_out)) if held_out
                     else _lattice(a))
        for name, inputs, target, domain in (("ab", inputs_ab, b, domains[1]),
                                             ("ba", _lattice(b), a, domains[0])):
            if domain.background is not Polarity.bright:
                continue
            colour = background_median(_lattice(target)(), target[2])
            if colour is not None:
                directions[name] = Direction(inputs, target[1], target[2], colour)
        return cls(directions, device)

    def state(self, generators: dict[str, Generator], iteration: int
              ) -> dict[str, dict[str, list[float]]]:
        """``{"white_balance": {weights name: gains}}`` for a model file: every generator
        (``g_ab``, ``ema_ab``, …) whose direction has a target colour and a fit."""
        if self._fitted is None or self._fitted[0] != iteration:
            gains: dict[str, list[float]] = {}
            for name, generator in generators.items():
                direction = self.directions.get(name.rsplit("_", 1)[-1])
                fitted = None if direction is None else output_gains(generator, direction,
                                                                     self.device)
                if fitted is not None:
                    gains[name] = list(fitted)
            self._fitted = (iteration, gains)
        return {"white_balance": self._fitted[1]} if self._fitted[1] else {}

