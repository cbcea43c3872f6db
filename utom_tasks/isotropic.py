"""isotropic: axially blurred volumes → isotropic volumes, learned from XZ/YZ vs XY planes.

Demo data: a real confocal nuclei stack made anisotropic (z blur, coarse z-sampling, linear
resampling back to the original grid, then camera noise), cut along y into training | held-out
test | training sub-volumes. Both domains come from the same degraded training volumes, as a
user would have them: B reads them as XY planes (lateral resolution), A as XZ/YZ planes (axial
blur); the original stack is the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.config import Budget
from utom_core.domain import Domain, PixelType
from utom_core.task import Slicing, Task, TaskData
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import axial_degrade, poisson_gaussian, to_uint16

SIGMA_Z = 2.0
"""Axial Gaussian blur in original slices (σ 0.58 µm; lateral pixels are 0.26 µm)."""
Z_STEP = 4
"""Keep every 4th slice: 1.16 µm z-sampling, ~4.5× the lateral pixel size."""
VOXEL = {"z": 0.29, "y": 0.26, "x": 0.26}
PHOTONS, READ_NOISE = 250.0, 4.0
"""Photons at the 99.9th percentile above baseline and read noise of the simulated anisotropic
acquisition: about the original stack's own noise (variance vs mean of neighbouring voxels)."""


def demo_data(workdir: Path, seed: int) -> TaskData:
    """Two ZYX uint16 training sub-volumes (each read as XZ/YZ planes for A and XY planes for
    B) and a held-out test sub-volume between them, cut along y, with its original."""
    original = bundled("nuclei.tif")
    rng = np.random.default_rng(seed)
    offset, peak = float(np.percentile(original, 1)), float(np.percentile(original, 99.9))
    blurred = axial_degrade(original, SIGMA_Z, Z_STEP)
    depth = blurred.shape[0]
    original = original[:depth]
    before, cut_test, after = bands(original.shape[1])
    z, x = slice(None), slice(None)
    specimen = "confocal nuclei (nuclei.tif)"
    writer = DemoWriter(workdir)

    def anisotropic(rows: slice) -> np.ndarray:
        return to_uint16(poisson_gaussian(blurred[:, rows], PHOTONS, READ_NOISE, rng, offset,
                                          peak))

    for name, rows in (("anisotropic_1.tif", before), ("anisotropic_2.tif", after)):
        writer.train("ab", name, anisotropic(rows), "ZYX", specimen,
                     region(z, rows, x, shape=original.shape), pixel_size=VOXEL,
                     truth=original[:, rows])
    writer.test("anisotropic_test.tif", anisotropic(cut_test), "ZYX", specimen,
                region(z, cut_test, x, shape=original.shape), reference=original[:, cut_test],
                pixel_size=VOXEL)
    notes = [
        "SIMULATED anisotropic acquisition of real data: bundled confocal nuclei (voxel 0.29 "
        f"× 0.26 × 0.26 µm). Gaussian blur along z (σ = {SIGMA_Z:g} slices = "
        f"{SIGMA_Z * VOXEL['z']:.2f} µm), every {Z_STEP}th slice kept "
        f"({Z_STEP * VOXEL['z']:.2f} µm z-step), linear interpolation back to the 0.29 µm "
        f"grid ({depth} slices), then shot and read noise ({PHOTONS:g} photons at the 99.9th "
        f"percentile above the baseline, {READ_NOISE:g} photon read noise, seed {seed}): as "
        "noisy as the original, as a real acquisition would be.",
        f"Split along y: training sub-volumes rows {before.start}:{before.stop} and "
        f"{after.start}:{after.stop}, each read as XZ/YZ planes (domain A) and as XY planes "
        f"(domain B), as one would train on a single anisotropic stack; held-out test rows "
        f"{cut_test.start}:{cut_test.stop}; z and x whole. Reference: the original "
        "(undegraded) test sub-volume.",
    ]
    return writer.finish(notes)


TASK = Task(
    name="isotropic",
    summary="axially blurred → isotropic 3D (XZ/YZ planes learn from XY planes)",
    domain_a=Domain(name="axial planes (XZ/YZ)", channels=1, axes="zyx", dtype=PixelType.uint16),
    domain_b=Domain(name="lateral planes (XY)", channels=1, axes="zyx", dtype=PixelType.uint16),
    slicing=Slicing.xz_yz,
    training={"residual": True, "shared_range": True, "identity": True, "anchor_sigma": 3.0,
              "run_checkpoint": "best", "val_metric": "content_kept"},
    budgets={Budget.quick: {"tile": 40, "iterations": 1200}, Budget.bench: {"tile": 40},
             Budget.demo: {"tile": 40, "iterations": 3000}},
    demo_data=demo_data,
    evaluators=["psnr", "ssim", "content", "anisotropy"],
)
