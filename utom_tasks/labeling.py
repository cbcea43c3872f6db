"""label: transmitted-light (phase) image → three fluorescence channels.

Demo data, SIMULATED end to end from real nuclei (no real phase/fluorescence pair is
available offline): three fluorescence labels derived from a real nuclear stain and a
pseudo-phase image rendered from them (``simulate.label_channels``, ``simulate.pseudo_phase``).
XY slices are cut into column bands A | test | B and each band is rendered on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.domain import Domain, PixelType
from utom_core.task import Task, TaskData
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import label_channels, pseudo_phase, to_uint16

SLICES = slice(8, 40, 2)
"""XY slices used for training (through the nuclei; every 2nd, 0.58 µm apart)."""
TEST_SLICES = (16, 24, 32)
PIXEL = {"y": 0.26, "x": 0.26}


def demo_data(workdir: Path, seed: int) -> TaskData:
    """A = pseudo-phase of the left band, B = 3-channel labels of the right band (CYX),
    test = pseudo-phase of the middle band with its labels as reference."""
    volume = bundled("nuclei.tif")
    rng = np.random.default_rng(seed)
    background = float(np.percentile(volume, 1))
    bright = float(np.percentile(volume, 99.5)) - background

    def labels(part: np.ndarray) -> np.ndarray:
        return label_channels(part, background, bright)

    def phase(labelled: np.ndarray) -> np.ndarray:
        return pseudo_phase(labelled, background, bright, rng)

    cut_a, cut_test, cut_b = bands(volume.shape[2])
    specimen = "confocal nuclei (nuclei.tif)"
    rows = slice(None)
    writer = DemoWriter(workdir)
    a = np.stack([phase(labels(volume[z, :, cut_a])) for z in range(volume.shape[0])[SLICES]])
    a_truth = np.stack([labels(volume[z, :, cut_a]) for z in range(volume.shape[0])[SLICES]])
    writer.train("a", "phase_a.tif", a, "ZYX", specimen,
                 region(SLICES, rows, cut_a, shape=volume.shape), pixel_size=PIXEL,
                 truth=to_uint16(a_truth), truth_axes="ZCYX")
    b = np.stack([labels(volume[z, :, cut_b]) for z in range(volume.shape[0])[SLICES]])
    writer.train("b", "labels_b.tif", to_uint16(b), "ZCYX", specimen,
                 region(SLICES, rows, cut_b, shape=volume.shape), pixel_size=PIXEL)
    for z in TEST_SLICES:
        truth = labels(volume[z, :, cut_test])
        writer.test(f"phase_{z:02d}.tif", phase(truth), "YX", specimen,
                    region(slice(z, z + 1), rows, cut_test, shape=volume.shape),
                    reference=to_uint16(truth), reference_axes="CYX", pixel_size=PIXEL)
    notes = [
        "SIMULATED (both domains): no real phase/fluorescence pair is available offline. "
        "From real confocal nuclei (bundled nuclei.tif), three labels: c0 the nuclei, c1 a "
        "cytoplasm-like shell 2–10 px around them, c2 their small bright foci (white top-hat); "
        "and a pseudo quantitative-phase image (dry-mass proxy nuclei + 0.8·shell + 0.3·foci, "
        "σ 1 px optics, halo 0.3 × σ 8 px, Poisson–Gaussian noise at 500 photons, seed "
        f"{seed}).",
        f"Split by columns of XY slices {SLICES.start}–{SLICES.stop - 1} (every "
        f"{SLICES.step}nd): A (phase) {cut_a.start}:{cut_a.stop}, held-out test "
        f"{cut_test.start}:{cut_test.stop}, B (labels) {cut_b.start}:{cut_b.stop}; test "
        f"slices z = {', '.join(map(str, TEST_SLICES))}; reference: their three labels "
        "(exact for the simulation; SSIM per channel).",
    ]
    return writer.finish(notes)


TASK = Task(
    name="label",
    summary="phase contrast → 3-channel fluorescence (virtual labelling)",
    domain_a=Domain(name="phase contrast", channels=1, dtype=PixelType.uint16),
    domain_b=Domain(name="fluorescence (3 labels)", channels=3, dtype=PixelType.uint16,
                    per_channel=True),
    demo_data=demo_data,
    evaluators=["psnr", "ssim", "content"],
)
