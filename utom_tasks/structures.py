"""Structures the demos do not show, as restoration cases: puncta, a membrane-like meshwork,
sparse cells and thin branching neurites.

Each structure is a clean 2D image from a bundled file (``demo_data/ATTRIBUTION.md``); a case
degrades it the way a restoration task's demo does (``sr``: Gaussian PSF + shot and read
noise; ``denoise``: shot and read noise at a low photon count) and cuts it into A | test | B
bands along its longer axis, each band degraded on its own, with the clean test band as the
exact reference. ``benchmarks/structures.py`` trains on every case and scores it against its
input floor; the tests use the same cases at tiny sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from utom_core.errors import UtomError
from utom_core.task import TaskData
from utom_tasks import denoise, super_resolution
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import gaussian_filter, poisson_gaussian, to_uint16

BASELINE, PEAK = 100.0, 20000.0
"""Camera baseline and brightest level the 8-bit sources are rescaled to (16-bit units)."""
SHARP_PHOTONS = 2000.0
"""Photons at the brightest pixels of a rendered (not recorded) sharp image: its domain B
carries mild shot noise like any real high-SNR image; its reference stays noise-free."""
GAP = 16


def _rescaled(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    return BASELINE + (image - image.min()) * (PEAK / max(float(np.ptp(image)), 1e-12))


def puncta() -> np.ndarray:
    """Real HybISS puncta: diffraction-limited spots on a hazy cellular background."""
    return bundled("puncta.tif").astype(np.float64)


def meshwork() -> np.ndarray:
    """A network of bright ridges around dark compartments (membrane-like)."""
    return _rescaled(bundled("meshwork.tif"))


def sparse_cells() -> np.ndarray:
    """Real fluorescence of a few cells on a black background (most pixels empty)."""
    return _rescaled(bundled("sparse_cells.tif")[0])


def neurites() -> np.ndarray:
    """Sparse branching cells: one bright body each with 1-px processes traced along the
    meshwork's ridges within a disc around it, blurred by a σ = 0.7 px optical PSF. Under 5%
    of the pixels are content: the case the default threshold estimates miss."""
    mesh = gaussian_filter(bundled("meshwork.tif").astype(np.float64), 1.0)
    ridge = np.zeros(mesh.shape, bool)
    for axis in (0, 1):
        ridge |= ((mesh >= np.roll(mesh, 1, axis)) & (mesh >= np.roll(mesh, -1, axis)))
    ridge &= mesh > np.percentile(mesh, 70)
    rows, cols = np.indices(mesh.shape)
    long_axis = int(np.argmax(mesh.shape))
    radius = 0.3 * min(mesh.shape)
    image = np.zeros(mesh.shape)
    for fraction in (1 / 6, 1 / 2, 5 / 6):
        centre = [mesh.shape[0] / 2, mesh.shape[1] / 2]
        centre[long_axis] = fraction * mesh.shape[long_axis]
        distance = np.hypot(rows - centre[0], cols - centre[1])
        image[ridge & (distance < radius)] = 0.35
        image += np.exp(-(distance**2) / (2 * 5.0**2))
    return _rescaled(gaussian_filter(np.clip(image, 0, 1), 0.7))


STRUCTURES: dict[str, Callable[[], np.ndarray]] = {
    "puncta": puncta, "meshwork": meshwork, "sparse-cells": sparse_cells, "neurites": neurites,
}
"""Every structure by name, each a clean (Y, X) float64 image in 16-bit units."""


DEGRADATIONS = {"sr": super_resolution.degrade, "denoise": denoise.degrade}
"""Each task's own demo degradation, at the photon levels its demo states."""


CASE_TASKS = tuple(DEGRADATIONS)


def structure_case(task: str, structure: str, workdir: Path, seed: int = 0,
                   shrink: int = 1) -> TaskData:
    """Write one case (A, B, test, reference TIFFs) into ``workdir``; ``shrink`` keeps every
    n-th pixel of the structure first (tiny cases for tests)."""
    if structure not in STRUCTURES:
        raise UtomError(f"unknown structure {structure!r} (known: {', '.join(STRUCTURES)})")
    clean = STRUCTURES[structure]()[::shrink, ::shrink]
    rng = np.random.default_rng(seed)
    offset, peak = float(np.percentile(clean, 1)), float(np.percentile(clean, 99.9))
    if task not in DEGRADATIONS:
        raise UtomError(f"no structure cases for task {task!r} ({', '.join(DEGRADATIONS)})")

    def degrade(part: np.ndarray) -> np.ndarray:
        return DEGRADATIONS[task](part, rng, offset, peak)

    axis = int(np.argmax(clean.shape))
    cut_a, cut_test, cut_b = bands(clean.shape[axis], test_fraction=0.25,
                                   gap=max(2, GAP // shrink))

    def part(cut: slice) -> tuple[np.ndarray, tuple[slice, slice]]:
        where = (cut, slice(None)) if axis == 0 else (slice(None), cut)
        return clean[where], where

    recorded = structure == "puncta"  # a real recording: its own noise is the sharp domain's
    sharp_b, where_b = part(cut_b)
    if not recorded:
        sharp_b = poisson_gaussian(sharp_b, SHARP_PHOTONS, 0.0, rng, offset, peak)
    about = STRUCTURES[structure].__doc__ or structure
    specimen = f"{structure} ({about.splitlines()[0]})"
    writer = DemoWriter(workdir)
    (source_a, where_a), (source_test, where_test) = part(cut_a), part(cut_test)
    writer.train("a", f"{structure}_a.tif", to_uint16(degrade(source_a)), "YX", specimen,
                 region(*where_a, shape=clean.shape), truth=to_uint16(source_a))
    writer.train("b", f"{structure}_b.tif", to_uint16(sharp_b), "YX", specimen,
                 region(*where_b, shape=clean.shape))
    writer.test(f"{structure}_test.tif", to_uint16(degrade(source_test)), "YX", specimen,
                region(*where_test, shape=clean.shape), reference=to_uint16(source_test))
    return writer.finish([
        f"Structure case: {structure} for {task} ({clean.shape[0]}×{clean.shape[1]} px, "
        f"seed {seed}), degraded as the {task} demo; reference: the clean test band."])
