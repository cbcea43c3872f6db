"""Degradations and renderings that turn real images into the demo tasks' other domain.

Each is a plain function of arrays (and a seeded generator where noise is drawn), so one
implementation serves every task and its parameters are stated where a task calls it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

HE_STAINS = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]])
"""Ruifrok & Johnston (2001) optical-density vectors of haematoxylin and eosin (RGB)."""


def gaussian_filter1d(image: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Gaussian blur (float32) along one axis, borders reflected (a separable-filter pass)."""
    if sigma <= 0:
        return image.astype(np.float32)
    radius = max(1, math.ceil(3 * sigma))
    kernel = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    weights = torch.from_numpy((kernel / kernel.sum()).astype(np.float32)).view(1, 1, -1)
    moved = np.moveaxis(image.astype(np.float32), axis, -1)
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(radius, radius)], mode="reflect")
    rows = torch.from_numpy(np.ascontiguousarray(padded)).reshape(-1, 1, padded.shape[-1])
    blurred = F.conv1d(rows, weights).reshape(moved.shape).numpy()
    return np.moveaxis(blurred, -1, axis)


def gaussian_filter(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the last two (Y, X) axes."""
    return gaussian_filter1d(gaussian_filter1d(image, sigma, -1), sigma, -2)


def _pool(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation of a (Y, X) image by a (2r+1)² square (max filter)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.max_pool2d(tensor, 2 * radius + 1, stride=1, padding=radius)[0, 0].numpy()


def dilate(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation (square structuring element)."""
    return _pool(image, radius)


def erode(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey erosion (square structuring element)."""
    return -_pool(-np.asarray(image, dtype=np.float32), radius)


def white_tophat(image: np.ndarray, radius: int) -> np.ndarray:
    """Bright details smaller than the element: image minus its grey opening."""
    image = np.asarray(image, dtype=np.float32)
    return image - dilate(erode(image, radius), radius)


def poisson_gaussian(
    image: np.ndarray,
    peak_photons: float,
    read_noise: float,
    rng: np.random.Generator,
    offset: float = 0.0,
    peak: float | None = None,
) -> np.ndarray:
    """Shot and read noise at a stated photon level, returned in the input's intensity units.

    The signal above ``offset`` (the camera baseline) is scaled so that ``peak`` (default: the
    99.9th percentile of the image) holds ``peak_photons`` expected photons; photons are drawn
    from a Poisson law, Gaussian read noise of ``read_noise`` photons is added, and the result
    is scaled back. Give ``peak`` from a whole image when noising its crops separately, so
    every crop gets the same photon level. float32, not clipped.
    """
    image = np.asarray(image, dtype=np.float64)
    signal = np.clip(image - offset, 0, None)
    level = float(np.percentile(signal, 99.9)) if peak is None else peak - offset
    scale = peak_photons / max(level, 1e-12)
    photons = rng.poisson(signal * scale) + rng.normal(0.0, read_noise, image.shape)
    return (photons / scale + offset).astype(np.float32)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Round and clip to uint16."""
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16)


def axial_degrade(volume: np.ndarray, sigma_z: float, step: int) -> np.ndarray:
    """An anisotropic acquisition of a (Z, Y, X) volume, resampled back to its own z grid.

    Blur along z (axial PSF elongation, σ in slices), keep every ``step``-th slice (coarse
    z-sampling), then interpolate linearly along z onto the original slices 0 … (k-1)·step,
    so the result is on the same grid as ``volume[: (k-1)·step + 1]`` and blurred axially only.
    """
    blurred = gaussian_filter1d(volume, sigma_z, axis=0)
    kept = blurred[::step]
    z = np.arange((kept.shape[0] - 1) * step + 1) / step
    low = np.minimum(np.floor(z).astype(int), kept.shape[0] - 2)
    weight = (z - low)[:, None, None].astype(np.float32)
    return (1 - weight) * kept[low] + weight * kept[low + 1]


def stain_concentrations(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin optical densities of an (H, W, 3) uint8 bright-field image.

    Colour deconvolution: per-pixel optical density −log10(I / 255) projected on the two
    stain vectors and their normalised cross product (residual) by least squares.
    """
    od = -np.log10(np.maximum(rgb.astype(np.float32), 1.0) / 255.0)
    residual = np.cross(HE_STAINS[0], HE_STAINS[1])
    stains = np.vstack([HE_STAINS / np.linalg.norm(HE_STAINS, axis=1, keepdims=True),
                        residual / np.linalg.norm(residual)])
    amounts = od.reshape(-1, 3) @ np.linalg.pinv(stains)
    amounts = np.clip(amounts, 0, None).reshape(*rgb.shape[:2], 3)
    return amounts[..., 0], amounts[..., 1]


def pseudo_autofluorescence(
    rgb: np.ndarray, background: float = 5500.0, tissue: float = 27000.0
) -> np.ndarray:
    """A noise-free, label-free-looking autofluorescence signal (float32 counts) from real H&E.

    Brightness follows stain density: eosin-rich stroma and cytoplasm fluoresce strongly,
    haematoxylin-rich nuclei weakly (weight 0.35), unstained lumen and slide stay dark. The
    response saturates, 1 − exp(−density / median tissue density), so pale stroma stays
    visible beside dense keratin; the median tissue pixel lands at ``tissue`` counts and empty
    slide near ``background`` — the levels of the real colorectal autofluorescence. Per pixel
    only, so crops of the result are crops of the rendering. A stand-in for real data, not a
    model of autofluorescence physics.
    """
    haematoxylin, eosin = stain_concentrations(rgb)
    density = eosin + 0.35 * haematoxylin
    tissue_pixels = density[density > 0.15]
    level = float(np.median(tissue_pixels)) if tissue_pixels.size else 1.0
    response = (1.0 - np.exp(-density / level)) / (1.0 - math.exp(-1.0))
    return (background + (tissue - background) * response).astype(np.float32)


def label_channels(nuclei: np.ndarray, background: float, bright: float) -> np.ndarray:
    """Three fluorescence labels (3, Y, X) float32 derived from a real nuclear stain (Y, X).

    c0: the nuclei themselves; c1: a cytoplasm-like shell 2–10 px around each nucleus (dilated
    nuclear mask minus its 2-px dilation, smoothed, at 0.6× the nuclei's brightness); c2:
    puncta — the white top-hat (radius 2) of the nuclei, i.e. their small bright foci, at 3×.
    ``background`` and ``bright`` (camera baseline and bright-nucleus level above it) come from
    the whole stack, so crops rendered separately share one intensity scale.
    """
    signal = np.clip(np.asarray(nuclei, dtype=np.float32) - background, 0, None)
    mask = gaussian_filter((signal > 0.25 * bright).astype(np.float32), 1.0)
    shell = np.clip(dilate(mask, 10) - dilate(mask, 2), 0, 1)
    cytoplasm = gaussian_filter(shell, 2.0) * 0.6 * bright
    puncta = 3.0 * white_tophat(signal, 2)
    return np.stack([signal, cytoplasm, puncta]) + background


PHASE_BACKGROUND, PHASE_SPAN = 2000.0, 18000.0
"""Counts of empty background and of a bright nucleus above it in the pseudo-phase image."""


def pseudo_phase(
    labels: np.ndarray,
    background: float,
    bright: float,
    rng: np.random.Generator,
    halo_sigma: float = 8.0,
) -> np.ndarray:
    """A quantitative-phase-like image (uint16) rendered from label channels (3, Y, X).

    Dry mass (refractive index) proxy: (nuclei + 0.8·cytoplasm + 0.3·puncta) above
    ``background`` in units of ``bright``; the optical path is that proxy blurred by σ 1 px;
    a halo, as phase imaging shows around cells, subtracts 0.3× the path blurred by
    ``halo_sigma``. Objects are bright on a dark background: 2000 counts of background (the
    halo dips below it), ≈ 20000 for a bright nucleus; shot and read noise with 500 photons
    at that level.
    """
    scaled = np.clip(labels - background, 0, None) / bright
    mass = scaled[0] + 0.8 * scaled[1] + 0.3 * scaled[2]
    path = gaussian_filter(mass, 1.0)
    phase = path - 0.3 * gaussian_filter(path, halo_sigma)
    raw = np.clip(PHASE_BACKGROUND + PHASE_SPAN * phase, 0, None)
    noisy = poisson_gaussian(raw, 500.0, 2.0, rng, peak=PHASE_BACKGROUND + PHASE_SPAN)
    return to_uint16(noisy)
