"""White balance: one gain per output channel that gives a model's background the target
images' background colour.

Trained for the demo budget, stain-he models paint the background of images they have not
seen near tanh's ceiling (median 247 of 255 on the held-out band) against the scanner's
slightly magenta glass (241, 238, 241), while on their training images they paint it almost
right (240, 238, 239): the error is one of generalisation, and it shows on held-out images
only. The background term (``lambda_background``) that asks for the colour costs tissue
colour; a von Kries gain after the network costs none. Each saved model's generator predicts
the run's validation crops (no reference is used; where they show too little background, the
training images) and the gain maps the median of its background onto the median of the target
images' background. Bright backgrounds only: a gain moves white and keeps black, and a dark
background's level is its noise floor, which a gain would blow up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from utom_core.data.background import Background, background_median, lattice_units
from utom_core.domain import Normalisation, Polarity
from utom_core.networks.base import Generator
from utom_core.saliency import SaliencyOperator
from utom_core.training.validation import Validator, whole_prediction

GAIN_RANGE = (0.5, 2.0)
"""Gains a fit may give; outside it the fit is refused (a background a few pixels wide, a
generator early in training) and the model predicts without a balance."""


@dataclass(frozen=True)
class BalanceFit:
    """What one direction's gains are fitted on."""

    inputs: tuple[Callable[[], Iterable[np.ndarray]], ...]
    """The (C, H, W) [-1, 1]-scale images its generator predicts for the fit, in order of
    preference: the first that shows background is used."""
    target_norm: Normalisation
    target_saliency: SaliencyOperator
    colour: tuple[float, ...]
    """The target images' background colour on the [-1, 1] scale."""


def output_gains(generator: Generator, fit: BalanceFit, device: torch.device
                 ) -> tuple[float, ...] | None:
    """Per channel, the target colour over the background median of the generator's
    predictions, in raw units (None: no input shows background, or a gain falls outside
    ``GAIN_RANGE``)."""
    was_training = generator.training
    generator.eval()
    try:
        predicted = None
        for inputs in fit.inputs:
            predicted = background_median(
                (whole_prediction(generator, unit, generator.size_multiple, device)
                 for unit in inputs()), fit.target_saliency)
            if predicted is not None:
                break
    finally:
        generator.train(was_training)
    if predicted is None:
        return None
    made, wanted = (fit.target_norm.unrounded(np.array(colour)[:, None])[:, 0].astype(np.float64)
                    for colour in (predicted, fit.colour))
    if min(made) <= 0:
        return None
    gains = wanted / made
    if not (GAIN_RANGE[0] <= gains.min() and gains.max() <= GAIN_RANGE[1]):
        return None
    return tuple(float(g) for g in gains)


class WhiteBalance:
    """The gains of every saved generator whose target background is bright, fitted once per
    state of the weights whatever the number of files saved from it (model, checkpoint, best
    model)."""

    def __init__(self, fits: dict[str, BalanceFit], device: torch.device) -> None:
        self.fits, self.device = fits, device
        self._fitted: tuple[int, dict[str, list[float]]] | None = None

    @classmethod
    def of_run(cls, a: Background, b: Background, validator: Validator | None,
               device: torch.device) -> WhiteBalance:
        """Directions "ab" (fitted on the validation crops, then on A's training images) and
        "ba" (on B's training images), where the target is bright and shows background."""
        fits: dict[str, BalanceFit] = {}
        norm_a = a[1]
        held_out = [crop.raw for crop in validator.crops] if validator else []
        inputs_ab = ((lambda: (norm_a.apply(raw) for raw in held_out)), lattice_units(a))
        for name, inputs, target in (("ab", inputs_ab, b), ("ba", (lattice_units(b),), a)):
            if target[0].domain.background is not Polarity.bright:
                continue
            colour = background_median(lattice_units(target)(), target[2])
            if colour is not None:
                fits[name] = BalanceFit(inputs, target[1], target[2], colour)
        return cls(fits, device)

    def forget(self) -> None:
        """Drop the last fit: the weights were replaced (a resumed state, a timing trial)."""
        self._fitted = None

    def state(self, generators: dict[str, Generator], iteration: int
              ) -> dict[str, dict[str, list[float]]]:
        """``{"white_balance": {weights name: gains}}`` for a model file: every generator
        (``g_ab``, ``ema_ab``, …) whose direction has a target colour and a fit."""
        if self._fitted is None or self._fitted[0] != iteration:
            gains: dict[str, list[float]] = {}
            for name, generator in generators.items():
                fit = self.fits.get(name.rsplit("_", 1)[-1])
                fitted = None if fit is None else output_gains(generator, fit, self.device)
                if fitted is not None:
                    gains[name] = list(fitted)
            self._fitted = (iteration, gains)
        return {"white_balance": self._fitted[1]} if self._fitted[1] else {}
