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
    note: str = ""
    """Why the estimator is not the one asked for, where it is not."""

    def origin(self) -> str:
        """The source with the reason for it: what run.json and the report keep."""
        return f"{self.source}; {self.note}" if self.note else self.source

    def describe(self) -> str:
        return (f"threshold {self.threshold:.6g} ({self.origin()}, raw units) marks "
                f"{self.fraction:.1%} of pixels as content")


SPARSE_ESTIMATOR = "triangle"
"""Where the chosen estimator's threshold marks a content fraction outside the allowed range
(sparse neurites, puncta, a few cells on a black field), this one is tried instead."""


def estimate_threshold(samples: np.ndarray, method: str,
                       background: Polarity = Polarity.dark) -> float:
    """A raw threshold on the channel mean of sampled pixels; the triangle method looks for
    content on the side away from the background (bright on dark, dark on bright)."""
    mean = samples.mean(axis=0)
    if method == SPARSE_ESTIMATOR and background is Polarity.bright:
        return -THRESHOLD_ESTIMATORS[method](-mean)
    return THRESHOLD_ESTIMATORS[method](mean)


def allowed(fraction: float) -> bool:
    return MIN_CONTENT_FRACTION <= fraction <= MAX_CONTENT_FRACTION


def estimated(samples: np.ndarray, method: str,
              background: Polarity) -> tuple[float, str, str]:
    """(threshold, estimator, note): the estimate of ``method``, or, where it marks too little
    or too much of ``samples`` as content, the sparse-content estimate when that one is
    within the allowed range (the note says why). Neither in range: ``method``'s, which
    ``check_fit`` then refuses (a blank image has no threshold)."""
    threshold = estimate_threshold(samples, method, background)
    fraction = content_fraction(samples, threshold, background)
    if allowed(fraction) or method == SPARSE_ESTIMATOR:
        return threshold, method, ""
    sparse = estimate_threshold(samples, SPARSE_ESTIMATOR, background)
    if not allowed(content_fraction(samples, sparse, background)):
        return threshold, method, ""
    return sparse, SPARSE_ESTIMATOR, (f"sparse content: the {method} estimate {threshold:.6g} "
                                      f"marked {fraction:.2%}")


def content_fraction(samples: np.ndarray, threshold: float, background: Polarity) -> float:
    """Fraction of sampled pixels whose channel mean counts as content at ``threshold``."""
    mean = samples.mean(axis=0)
    content = mean < threshold if background is Polarity.bright else mean > threshold
    return float(content.mean())


def check_fit(fit: DomainFit, where: str) -> None:
    """Refuse a threshold that makes (almost) everything content or background."""
    if not allowed(fit.fraction):
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


def balanced(samples_a: np.ndarray, samples_b: np.ndarray) -> np.ndarray:
    """Both domains' samples with equal weight: the larger evenly thinned to the smaller's
    size (small images give all their pixels, fewer than a large domain's sample)."""
    size = min(samples_a.shape[1], samples_b.shape[1])

    def thinned(samples: np.ndarray) -> np.ndarray:
        return samples[:, np.linspace(0, samples.shape[1] - 1, size).astype(int)]

    return np.concatenate([thinned(samples_a), thinned(samples_b)], axis=1)


UNIT_RATIO = 2.0
"""How far apart two domains' spans, and their mean levels, may both be before a shared range
is doubted: noise or content share moves one of them that far, a different exposure both."""


def range_note(samples_a: np.ndarray, samples_b: np.ndarray, domain_a: Domain,
               domain_b: Domain) -> str:
    """Where a shared range pools both domains, a word if their intensities say they are not
    in the same units (another exposure, gain or bit depth), else "".

    Two measures, each above the domain's own low percentile, must both differ: its span and
    its mean level. Zero-mean noise stretches the span of a noisy domain (denoise's are 2×
    apart) but leaves its mean; a sparse band's mean is a fraction of a dense one's at the
    same span; another exposure scales both."""
    spans, levels = [], []
    for samples, domain in ((samples_a, domain_a), (samples_b, domain_b)):
        own = fit_normalisation(samples, domain)
        low = np.asarray(own.low)
        spans.append(float(np.mean(np.asarray(own.high) - low)))
        levels.append(float(np.mean(np.mean(samples, axis=1) - low)))
    ratios = [max(pair) / max(min(pair), 1e-12) for pair in (spans, levels)]
    if min(ratios) < UNIT_RATIO:
        return ""
    return (f"shared_range: domain A's intensity span ({spans[0]:.6g}) and mean level "
            f"({levels[0]:.6g}) above its background differ {min(ratios):.1f}× or more from "
            f"B's ({spans[1]:.6g}, {levels[1]:.6g}); if they were not acquired in the same "
            "units (exposure, gain), train with --set shared_range=false --set anchor_sigma=0")


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
        if range_samples is not None:  # a flat domain is refused as such, pooled or not
            fit_normalisation(samples, domain)
        normalisation = fit_normalisation(fit_on, domain)
    except ValueError as err:
        raise UtomError(f"{where}: {err}") from None
    if setting == "task" and domain.threshold is not None:
        note = ""
        threshold, source = float(domain.threshold), "task default"
    elif setting in ("auto", "task"):  # "task" without a task threshold: estimated too
        threshold, used, note = estimated(fit_on, method, domain.background)
        source = f"{used} estimate" + (" on both domains" if range_samples is not None else "")
    else:
        threshold, source, note = float(setting), "given", ""
    fit = DomainFit(normalisation, threshold, source,
                    content_fraction(samples, threshold, domain.background), note)
    if check:
        check_fit(fit, where)
    return fit
