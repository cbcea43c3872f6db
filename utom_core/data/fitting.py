"""Fitting a domain to its images: percentile range, content threshold, sanity checks.

One estimator serves training and ``utom threshold``, so the mask a user checks is the mask
training uses.
"""

from __future__ import annotations

import numpy as np

from utom_core.data.images import DomainImages
from utom_core.domain import Domain, Normalisation, Polarity, fit_normalisation
from utom_core.errors import UtomError
from utom_core.saliency import THRESHOLD_ESTIMATORS

MIN_CONTENT_FRACTION, MAX_CONTENT_FRACTION = 0.01, 0.99


def estimate_threshold(samples: np.ndarray, method: str) -> float:
    """A raw threshold on the channel mean of sampled pixels."""
    return THRESHOLD_ESTIMATORS[method](samples.mean(axis=0))


def content_fraction(samples: np.ndarray, threshold: float, background: Polarity) -> float:
    """Fraction of sampled pixels whose channel mean counts as content at ``threshold``."""
    mean = samples.mean(axis=0)
    content = mean < threshold if background is Polarity.bright else mean > threshold
    return float(content.mean())


def check_threshold(samples: np.ndarray, threshold: float, domain: Domain, where: str) -> float:
    """Refuse a threshold that makes (almost) everything content or background."""
    fraction = content_fraction(samples, threshold, domain.background)
    if not MIN_CONTENT_FRACTION <= fraction <= MAX_CONTENT_FRACTION:
        raise UtomError(
            f"{where}: threshold {threshold:g} marks {fraction:.1%} of sampled pixels as content "
            f"(allowed {MIN_CONTENT_FRACTION:.0%}–{MAX_CONTENT_FRACTION:.0%}); check it with "
            "`utom threshold` or pass another value"
        )
    return fraction


def domain_samples(
    images: DomainImages, rng: np.random.Generator, count: int, where: str
) -> np.ndarray:
    """A (C, N) sample of a domain's raw pixels from all its images, checked to be finite."""
    samples = images.sample_pixels(rng, count)
    if not np.isfinite(samples).all():
        raise UtomError(f"{where}: images contain NaN or infinite values")
    return samples


def fit_domain(
    samples: np.ndarray, domain: Domain, setting: float | str, method: str, where: str,
    range_samples: np.ndarray | None = None,
) -> tuple[Normalisation, float]:
    """Fit a domain's normalisation and resolve its threshold (raw units), checked for sanity.

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
    elif setting == "task":
        threshold = float(domain.threshold)  # type: ignore[arg-type]
    else:
        threshold = float(setting)
    check_threshold(samples, threshold, domain, where)
    return normalisation, threshold
