"""isotropic: axially blurred volumes → isotropic volumes, learned from XZ/YZ vs XY planes.

Demo data: a real confocal nuclei stack made anisotropic (z blur, coarse z-sampling, linear
resampling back to the original grid), cut along y into A | held-out test | B sub-volumes.
Both domains come from the degraded stack, as a user would have it: B is read as XY planes
(lateral resolution), A as XZ/YZ planes (axial blur); the original stack is the reference.
"""

from __future__ import annotations

from pathlib import Path

from utom_core.config import Budget
from utom_core.domain import Domain, PixelType
from utom_core.task import Slicing, Task, TaskData
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import axial_degrade, to_uint16

SIGMA_Z = 2.0
"""Axial Gaussian blur in original slices (σ 0.58 µm; lateral pixels are 0.26 µm)."""
Z_STEP = 4
"""Keep every 4th slice: 1.16 µm z-sampling, ~4.5× the lateral pixel size."""
VOXEL = {"z": 0.29, "y": 0.26, "x": 0.26}


def demo_data(workdir: Path, seed: int) -> TaskData:
    """Three ZYX uint16 sub-volumes cut along y (B | test | A) and the original test part.
    Nothing is drawn at random: the data is the same for every seed."""
    original = bundled("nuclei.tif")
    degraded = to_uint16(axial_degrade(original, SIGMA_Z, Z_STEP))
    depth = degraded.shape[0]
    original = original[:depth]
    cut_b, cut_test, cut_a = bands(original.shape[1])
    z, x = slice(None), slice(None)
    specimen = "confocal nuclei (nuclei.tif)"
    writer = DemoWriter(workdir)
    writer.train("a", "axial_a.tif", degraded[:, cut_a], "ZYX", specimen,
                 region(z, cut_a, x, shape=original.shape), pixel_size=VOXEL,
                 truth=original[:, cut_a])
    writer.train("b", "lateral_b.tif", degraded[:, cut_b], "ZYX", specimen,
                 region(z, cut_b, x, shape=original.shape), pixel_size=VOXEL)
    writer.test("anisotropic_test.tif", degraded[:, cut_test], "ZYX", specimen,
                region(z, cut_test, x, shape=original.shape), reference=original[:, cut_test],
                pixel_size=VOXEL)
    notes = [
        "SIMULATED anisotropy of real data: bundled confocal nuclei (voxel 0.29 × 0.26 × "
        f"0.26 µm). Gaussian blur along z (σ = {SIGMA_Z:g} slices = {SIGMA_Z * VOXEL['z']:.2f} "
        f"µm), every {Z_STEP}th slice kept ({Z_STEP * VOXEL['z']:.2f} µm z-step), then linear "
        f"interpolation back to the 0.29 µm grid: {depth} slices.",
        f"Split along y: domain B = rows {cut_b.start}:{cut_b.stop} (read as XY planes), "
        f"held-out test = rows {cut_test.start}:{cut_test.stop}, domain A = rows "
        f"{cut_a.start}:{cut_a.stop} (read as XZ/YZ planes); z and x are whole. Degradation "
        "acts along z only, so no pixel of one part depends on another. Reference: the "
        "original (undegraded) test sub-volume.",
    ]
    return writer.finish(notes)


TASK = Task(
    name="isotropic",
    summary="axially blurred → isotropic 3D (XZ/YZ planes learn from XY planes)",
    domain_a=Domain(name="axial planes (XZ/YZ)", channels=1, axes="zyx", dtype=PixelType.uint16),
    domain_b=Domain(name="lateral planes (XY)", channels=1, axes="zyx", dtype=PixelType.uint16),
    slicing=Slicing.xz_yz,
    training={"residual": True, "shared_range": True},
    budgets={Budget.bench: {"tile": 40}, Budget.demo: {"tile": 40, "iterations": 3000}},
    demo_data=demo_data,
    evaluators=["psnr", "ssim", "content"],
)
