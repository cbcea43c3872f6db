"""Fitting a domain to its images: percentile range, content threshold, sanity checks.

One estimator serves training and ``utom threshold``, so the mask a user checks is the mask
training uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utom_core.data.images import DomainImages
from utom_core.domain import Domain, Normalisation, Polarity, fit_normalisation
from utom_core.errors import UtomError
from utom_core.saliency import THRESHOLD_ESTIMATORS

MIN_CONTENT_FRACTION, MAX_CONTENT_FRACTION = 0.01, 0.99
FIT_WINDOW = 64
"""Side of the lattice windows a domain's fitting sample is read in."""


@dataclass(frozen=True)
class DomainFit:
    """A domain fitted to its images: range, threshold, where the threshold came from and
    what share of the fitting sample it marks as content (what L_sc and the sampler see)."""

    normalisation: Normalisation
    threshold: float
    source: str
    """"given", "task default" or the estimator's name ("midpoint estimate", …)."""
    fraction: float

    def describe(self) -> str:
        return (f"threshold {self.threshold:.6g} ({self.source}, raw units) marks "
                f"{self.fraction:.1%} of pixels as content")


def estimate_threshold(samples: np.ndarray, method: str) -> float:
    """A raw threshold on the channel mean of sampled pixels."""
    return THRESHOLD_ESTIMATORS[method](samples.mean(axis=0))


def content_fraction(samples: np.ndarray, threshold: float, background: Polarity) -> float:
    """Fraction of sampled pixels whose channel mean counts as content at ``threshold``."""
    mean = samples.mean(axis=0)
    content = mean < threshold if background is Polarity.bright else mean > threshold
    return float(content.mean())


def check_fit(fit: DomainFit, where: str) -> None:
    """Refuse a threshold that makes (almost) everything content or background."""
    if not MIN_CONTENT_FRACTION <= fit.fraction <= MAX_CONTENT_FRACTION:
        raise UtomError(
            f"{where}: threshold {fit.threshold:g} marks {fit.fraction:.1%} of sampled pixels "
            f"as content (allowed {MIN_CONTENT_FRACTION:.0%}–{MAX_CONTENT_FRACTION:.0%}); "
            "check it with `utom threshold` or pass another value"
        )


def fitting_sample(images: DomainImages, count: int, where: str) -> np.ndarray:
    """The (C, ~count) raw pixels a domain is fitted on, checked to be finite.

    A fixed lattice over all its planes (every pixel of images smaller than ``count``), not a
    random draw: the same files give the same range and threshold whatever the budget, the
    seed or the command, so the mask ``utom threshold`` shows is the mask training uses."""
    samples = images.lattice_pixels(count, FIT_WINDOW)
    if not np.isfinite(samples).all():
        raise UtomError(f"{where}: images contain NaN or infinite values")
    return samples


def fit_domain(
    samples: np.ndarray, domain: Domain, setting: float | str, method: str, where: str,
    range_samples: np.ndarray | None = None, check: bool = True,
) -> DomainFit:
    """Fit a domain's normalisation and resolve its threshold (raw units), checked for sanity
    unless ``check`` is off (``utom threshold`` reports a refused value before refusing it).

    ``range_samples`` (both domains' pixels) gives a range, and an estimated threshold, shared
    with the other domain: in the same units one boundary between content and background
    holds for both, whereas thresholds estimated per domain differ with each training set's
    share of bright structures, and L_sc then pushes every pixel between them across.
    """
    fit_on = samples if range_samples is None else range_samples
    try:
        normalisation = fit_normalisation(fit_on, domain)
    except ValueError as err:
        raise UtomError(f"{where}: {err}") from None
    if setting == "auto" or (setting == "task" and domain.threshold is None):
        threshold = estimate_threshold(fit_on, method)
        source = f"{method} estimate" + (" on both domains" if range_samples is not None else "")
    elif setting == "task":
        threshold, source = float(domain.threshold), "task default"  # type: ignore[arg-type]
    else:
        threshold, source = float(setting), "given"
    fit = DomainFit(normalisation, threshold, source,
                    content_fraction(samples, threshold, domain.background))
    if check:
        check_fit(fit, where)
    return fit
