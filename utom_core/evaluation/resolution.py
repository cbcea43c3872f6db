"""Image resolution without a reference: decorrelation analysis (Descloux, Grußmayer &
Radenovic, Nat. Methods 16, 918–924, 2019).

The edge-apodised image's spectrum I is correlated with its own phase In = I/|I| cut to a disc
of radius r (normalised frequency, 1 = Nyquist): d(r) = Σ Re(I·conj(In·M_r)) /
sqrt(Σ|I|² · Σ|In·M_r|²). Noise decorrelates the phase beyond the frequencies the image
resolves, so d peaks at their edge. The same curve of the image high-passed by 1 − Gaussian
(σ from the unfiltered peak's period down to 0.15 px, ``HIGH_PASSES`` steps, then once more
on a refined σ and r range, as the authors' code does) peaks further out; peaks below
``MIN_AMPLITUDE`` are discarded, the cut-off kc is the highest peak left and the resolution
2/kc pixels (lower is finer). No peak (a flat image, pure noise): NaN.

Because Re(I·conj(In)) = |I| and |In|² = 1, every d(r) is a cumulative sum over the spectrum
sorted by radius: one FFT per image, whatever the number of filters and radii. The
directional variant sums over angular sectors of the spectrum only, around the row
(vertical) and the column (horizontal) frequency axis: resolution along each image axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from utom_core.evaluation.base import Evaluator, Sample

RADII = 50
"""Samples of r in each pass (the authors' default)."""
HIGH_PASSES = 10
"""High-pass filters per pass (the authors' Ng)."""
MIN_AMPLITUDE = 0.05
"""Peaks of d lower than this are numerical noise, not a resolved frequency (the authors')."""
PEAK_MARGIN = 0.001
"""How far a maximum must rise above the curve after it to count as a local peak."""
SMALLEST_SIGMA = 0.15
"""Narrowest high-pass Gaussian, in pixels (the authors')."""
APODISATION = 20
"""Pixels of cosine edge apodisation (at most an eighth of a side), so the image's borders
add no spurious high frequencies."""
SECTOR_DEGREES = 30.0
"""Half-angle of the directional sectors around a frequency axis."""


@dataclass(frozen=True)
class _Spectrum:
    """The spectrum's coefficients in a region, sorted by their normalised radius."""

    radius: np.ndarray
    magnitude: np.ndarray
    frequency: np.ndarray
    """Radius in cycles per pixel (what a Gaussian's transfer function needs)."""


def _apodised(image: np.ndarray) -> np.ndarray:
    """The image at zero mean, unit variance, its edges faded to zero by a cosine."""
    standardised = (image - image.mean()) / image.std()
    for axis, length in enumerate(standardised.shape):
        width = min(APODISATION, length // 8)
        if width == 0:
            continue
        ramp = np.ones(length)
        edge = np.sin(np.linspace(0, np.pi / 2, width, endpoint=False)) ** 2
        ramp[:width], ramp[length - width:] = edge, edge[::-1]
        standardised = standardised * ramp.reshape([-1 if a == axis else 1 for a in range(2)])
    return standardised


def _spectra(image: np.ndarray, sectors: dict[str, np.ndarray | None]) -> dict[str, _Spectrum]:
    """Each region's coefficients inside the Nyquist disc, without the mean, by radius."""
    spectrum = np.abs(np.fft.fft2(_apodised(image.astype(np.float64))))
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    frequency = np.hypot(fy, fx)
    radius = 2 * frequency
    inside = (radius < 1) & (radius > 0)
    found = {}
    for name, sector in sectors.items():
        keep = inside if sector is None else inside & sector
        order = np.argsort(radius[keep], kind="stable")
        found[name] = _Spectrum(radius[keep][order], spectrum[keep][order],
                                frequency[keep][order])
    return found


def _curve(spectrum: _Spectrum, sigma: float | None, radii: np.ndarray) -> np.ndarray:
    """d(r) of the image high-passed by 1 − Gaussian(σ px) (None: unfiltered)."""
    weight = spectrum.magnitude.copy()
    if sigma is not None:
        weight *= 1 - np.exp(-2 * (np.pi * sigma * spectrum.frequency) ** 2)
    norm = math.sqrt(float(np.sum(weight**2)))
    counts = np.searchsorted(spectrum.radius, radii)
    sums = np.concatenate([[0.0], np.cumsum(weight)])[counts]
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = sums / (norm * np.sqrt(counts))
    return np.nan_to_num(curve)


def _peak(curve: np.ndarray) -> tuple[int, float]:
    """(index, amplitude) of d's local maximum; (0, 0) where the curve only rises (the
    authors' getDcorrMax: a maximum at the last radius is no peak)."""
    values = list(curve)
    index = int(np.argmax(values))
    while index == len(values) - 1:
        values.pop()
        if not values:
            return 0, 0.0
        index = int(np.argmax(values))
        after = float(np.min(curve[index:]))
        if values[index] - after > PEAK_MARGIN:
            break
        values[index] = after
        index = len(values) - 1
    return index, float(values[index])


def _cutoff(spectrum: _Spectrum, shape: tuple[int, ...]) -> float:
    """The highest cut-off frequency any curve peaks at (normalised; 0: none)."""
    radii = np.linspace(0, 1, RADII)
    index, amplitude = _peak(_curve(spectrum, None, radii))
    unfiltered = (radii[index], amplitude)
    widest = 2 / radii[index] if index else max(shape) / 2
    sigmas = np.exp(np.linspace(math.log(widest), math.log(SMALLEST_SIGMA), HIGH_PASSES))
    peaks: list[tuple[float, float]] = []
    for refinement in (False, True):
        found = [_peak(_curve(spectrum, float(s), radii)) for s in sigmas]
        found_peaks = [(float(radii[i]), a if a >= MIN_AMPLITUDE else 0.0) for i, a in found]
        peaks += found_peaks
        if refinement:
            break
        sigmas, radii = _refined(sigmas, found_peaks)
    peaks.append(unfiltered)
    kept = [k for k, a in peaks if a >= MIN_AMPLITUDE]
    return max(kept, default=0.0)


def _refined(sigmas: np.ndarray, peaks: list[tuple[float, float]]
             ) -> tuple[np.ndarray, np.ndarray]:
    """The second pass's σ and r ranges: between the filters of the highest peak and of the
    best resolution × amplitude, around that one's radius (the authors' refinement)."""
    kc = np.array([k if a else 0.0 for k, a in peaks])
    geometric = np.sqrt(kc * np.array([a for _, a in peaks]))
    best, highest = int(np.argmax(geometric)), int(np.argmax(kc))
    first, last = min(best, highest), max(best, highest)
    if first == 0:
        last = 0
    last = min(last, len(sigmas) - 2)
    narrow = np.exp(np.linspace(math.log(sigmas[first]), math.log(sigmas[last + 1]),
                                HIGH_PASSES))
    centre = kc[best]
    return narrow, np.linspace(max(0.0, centre - 0.05), min(1.0, centre + 0.3), RADII)


def _resolution(cutoff: float) -> float:
    return 2 / cutoff if cutoff > 0 else math.nan


def _flat(image: np.ndarray) -> bool:
    return image.ndim != 2 or min(image.shape) < 4 or not np.isfinite(image).all() \
        or float(image.std()) == 0


def resolution(image: np.ndarray) -> float:
    """Resolution of a (Y, X) image in pixels by decorrelation analysis; NaN where it resolves
    nothing (a flat image, pure noise)."""
    if _flat(image):
        return math.nan
    return _resolution(_cutoff(_spectra(image, {"": None})[""], image.shape))


def directional_resolution(image: np.ndarray) -> tuple[float, float]:
    """(resolution along the rows' axis, along the columns' axis) of a (Y, X) image, in
    pixels: decorrelation analysis of the spectrum's sectors within ``SECTOR_DEGREES`` of the
    vertical and the horizontal frequency axis. NaN where a direction resolves nothing."""
    if _flat(image):
        return math.nan, math.nan
    fy = np.abs(np.fft.fftfreq(image.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(image.shape[1]))[None, :]
    angle = np.degrees(np.arctan2(fy, fx))  # 0: along x, 90: along y
    sectors: dict[str, np.ndarray | None] = {"rows": angle >= 90 - SECTOR_DEGREES,
                                             "columns": angle <= SECTOR_DEGREES}
    spectra = _spectra(image, sectors)
    return (_resolution(_cutoff(spectra["rows"], image.shape)),
            _resolution(_cutoff(spectra["columns"], image.shape)))


def anisotropy(image: np.ndarray) -> float:
    """Resolution along the rows over resolution along the columns of a (Y, X) image: on an
    XZ/YZ plane (rows along z) axial over lateral, 1 = isotropic. NaN where either is."""
    along_rows, along_columns = directional_resolution(image)
    return along_rows / along_columns


CROP = 1024
"""Side of the central crop of the middle plane that ``Resolution`` measures."""
PLANES = 8
"""XZ and YZ planes of a volume, each, whose directional resolutions ``Anisotropy`` pools."""
LATERAL_TOLERANCE = 0.05
"""How much coarser than its input's a prediction's lateral resolution may be and still count
as kept: blurring across z brings the anisotropy closer to 1 as surely as sharpening along it
(an isotropic run without the identity term went from 1.43 to 1.25 that way,
docs/results/model-choice.md), so the ``anisotropy`` model choice does not count a model
beyond it, and the report says it lost lateral detail."""


def lateral_kept(lateral: float, floor: float) -> bool:
    """Whether a lateral resolution is within ``LATERAL_TOLERANCE`` of its input's ``floor``
    (the one rule of the report's verdict and of the ``anisotropy`` model choice)."""
    return lateral <= floor * (1 + LATERAL_TOLERANCE)


def _grey(array: np.ndarray) -> np.ndarray:
    """Channels averaged: (C, ...) → (...)."""
    return array.astype(np.float64).mean(axis=0)


def _central(plane: np.ndarray) -> np.ndarray:
    top, left = ((side - min(side, CROP)) // 2 for side in plane.shape)
    return plane[top:top + CROP, left:left + CROP]


def _prediction_and_input(sample: Sample, measure: Callable[[np.ndarray], dict[str, float]]
                          ) -> dict[str, float]:
    """``measure``'s values of the prediction, and of the input with ``_input`` added to their
    names (channels averaged), each where it is finite."""
    found = {}
    for suffix, image in (("", sample.prediction), ("_input", sample.input)):
        values = {} if image is None else measure(_grey(image))
        found.update({name + suffix: value for name, value in values.items()
                      if math.isfinite(value)})
    return found


def _middle_plane_resolution(grey: np.ndarray) -> dict[str, float]:
    return {"resolution": resolution(_central(grey if grey.ndim == 2
                                              else grey[grey.shape[0] // 2]))}


class Resolution(Evaluator):
    """``resolution`` of the prediction (and of the input, ``resolution_input``) in pixels,
    on a central ``CROP``² of the middle XY plane, channels averaged; lower is finer. No
    reference needed; a key is left out where its image resolves nothing."""

    name = "resolution"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        return _prediction_and_input(sample, _middle_plane_resolution)


def axial_lateral(grey: np.ndarray) -> tuple[float, float]:
    """(axial, lateral) resolution in pixels of one XZ/YZ plane (rows along z), or of a
    (Z, Y, X) volume: the medians of up to ``PLANES`` evenly spaced XZ and as many YZ planes'
    directional resolutions. NaN where no plane resolves that direction."""
    if grey.ndim == 2:
        return directional_resolution(grey)
    planes = [grey[:, y, :] for y in _spaced(grey.shape[1])]
    planes += [grey[:, :, x] for x in _spaced(grey.shape[2])]
    pairs = np.array([directional_resolution(plane) for plane in planes])
    axial, lateral = (math.nan if np.isnan(column).all() else float(np.nanmedian(column))
                      for column in pairs.T)
    return axial, lateral


def _spaced(length: int) -> list[int]:
    return sorted(set(np.linspace(0, length - 1, PLANES + 2).round().astype(int)[1:-1]))


class Anisotropy(Evaluator):
    """``anisotropy``: axial over lateral resolution of the prediction (and of the input,
    ``anisotropy_input``); 1 = isotropic. Also each direction's resolution
    (``axial_resolution``, ``lateral_resolution`` and their ``_input``), since the ratio
    also comes closer to 1 where the lateral detail is lost. A volume (C, Z, Y, X) pools its
    XZ and YZ planes (``axial_lateral``); a 2D sample is taken to be one such plane, rows
    along z (the validation crop of an XZ/YZ task). No reference needed."""

    name = "anisotropy"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        return _prediction_and_input(sample, _directions)


def _directions(grey: np.ndarray) -> dict[str, float]:
    axial, lateral = axial_lateral(grey)
    return {"anisotropy": axial / lateral, "axial_resolution": axial,
            "lateral_resolution": lateral}
