"""sr: wide-field fluorescence → super-resolution fluorescence.

Demo data: real nuclei with fine TERRA foci; the wide-field domain is simulated by a Gaussian
PSF blur plus shot and read noise. The image is cut into column bands A | test | B, each
degraded on its own, so no blurred pixel mixes in structure from another band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.domain import Domain, PixelType
from utom_core.task import Task, TaskData
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import gaussian_filter, poisson_gaussian, to_uint16

PSF_SIGMA = 2.0
"""Gaussian PSF σ in pixels of the simulated wide-field image."""
PHOTONS, READ_NOISE = 200.0, 1.0
"""Photons at the brightest pixels (99.9th percentile above baseline), read noise."""
PERCENTILES = (0.5, 99.99)
"""Bright nuclei fill far more than 0.2% of a field: a 99.8th-percentile top would clip them."""
GAP = 16
"""Guard pixels between bands (well beyond the 3σ PSF radius)."""


def degrade(image: np.ndarray, rng: np.random.Generator, offset: float,
            peak: float) -> np.ndarray:
    """The simulated wide-field image: Gaussian PSF blur, then shot and read noise (float)."""
    return poisson_gaussian(gaussian_filter(image, PSF_SIGMA), PHOTONS, READ_NOISE, rng,
                            offset, peak)


def demo_data(workdir: Path, seed: int) -> TaskData:
    """A = blurred + noisy left band, B = sharp right band, test = blurred + noisy middle band
    with the sharp band as reference (all YX uint16)."""
    sharp = bundled("terra.tif")
    rng = np.random.default_rng(seed)
    offset = float(np.percentile(sharp, 1))
    peak = float(np.percentile(sharp, 99.9))

    def widefield(part: np.ndarray) -> np.ndarray:
        return to_uint16(degrade(part, rng, offset, peak))

    cut_a, cut_test, cut_b = bands(sharp.shape[1], test_fraction=0.2, gap=GAP)
    rows = slice(None)
    specimen = "TERRA nuclei (terra.tif)"
    writer = DemoWriter(workdir)
    writer.train("a", "widefield_a.tif", widefield(sharp[:, cut_a]), "YX", specimen,
                 region(rows, cut_a, shape=sharp.shape), truth=sharp[:, cut_a])
    writer.train("b", "sharp_b.tif", sharp[:, cut_b], "YX", specimen,
                 region(rows, cut_b, shape=sharp.shape))
    writer.test("widefield_test.tif", widefield(sharp[:, cut_test]), "YX", specimen,
                region(rows, cut_test, shape=sharp.shape), reference=sharp[:, cut_test])
    notes = [
        "SIMULATED wide-field of real data: bundled TERRA-foci nuclei (Spotiflow, "
        f"{sharp.shape[0]}×{sharp.shape[1]} px) blurred by a Gaussian PSF (σ = {PSF_SIGMA:g} "
        f"px) with Poisson–Gaussian noise ({PHOTONS:g} photons at the 99.9th percentile above "
        f"the baseline, {READ_NOISE:g} photon read noise, seed {seed}).",
        f"Split by columns: A (blurred) {cut_a.start}:{cut_a.stop}, held-out test "
        f"{cut_test.start}:{cut_test.stop}, B (original) {cut_b.start}:{cut_b.stop}, "
        f"{GAP}-px gaps, each band degraded separately. Reference: the original test band — "
        "the sharper real image, not a true super-resolution image.",
    ]
    return writer.finish(notes)


TASK = Task(
    name="sr",
    summary="wide-field → super-resolution fluorescence",
    domain_a=Domain(name="wide-field fluorescence", channels=1, dtype=PixelType.uint16,
                    percentiles=PERCENTILES),
    domain_b=Domain(name="super-resolved fluorescence", channels=1, dtype=PixelType.uint16,
                    percentiles=PERCENTILES),
    training={"residual": True, "shared_range": True, "identity": True, "anchor_sigma": 3.0,
              "run_checkpoint": "best", "val_metric": "content_kept"},
    demo_data=demo_data,
    evaluators=["psnr", "ssim", "content", "resolution"],
)
