"""denoise: low-SNR fluorescence → high-SNR fluorescence (16-bit).

Demo data (``UTOM_DENOISE_DEMO``): ``simulated`` (default) — Poisson–Gaussian noise on real
confocal nuclei at a stated photon level, split in space, with exact clean references for
before/after PSNR and SSIM; ``real`` — real noise: a live-cell telomere movie whose single
frames are real low-SNR images and whose 16-frame means are real high-SNR ones, split in time.
Its telomere spots cover under 1% of the clean frames, so the automatic threshold of domain B
is refused there: pass one with ``--threshold-b`` (e.g. 108).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from utom_core.domain import Domain, PixelType
from utom_core.errors import UtomError
from utom_core.task import Task, TaskData
from utom_tasks.demo import DemoWriter, bands, bundled, region
from utom_tasks.simulate import poisson_gaussian, to_uint16

VARIANT_ENV = "UTOM_DENOISE_DEMO"
MEAN_FRAMES = 16
"""Frames averaged into one high-SNR image (noise σ / 4)."""
A_FRAMES, TEST_FRAMES, B_FRAMES = slice(0, 40), slice(44, 60), slice(64, 96)
"""Time blocks of the bundled 96-frame movie, with 4-frame gaps between them."""
B_STRIDE = 2
TEST_INDICES = (2, 8, 14)
"""Test frames within the test block; each one's reference averages the block's other 15."""
NUCLEI_PIXEL = {"y": 0.26, "x": 0.26}
PHOTONS, READ_NOISE = 20.0, 1.0
"""Simulated variant: photons at the brightest nuclei (99.9th percentile), read noise."""
TEST_SLICES = (12, 24, 36)


def real_noise_data(workdir: Path, seed: int) -> TaskData:
    """Telomere movie: A = single frames 0–39, B = 16-frame means within frames 64–95,
    test = three single frames of the held-out block 44–59, reference = the block's mean.
    Nothing is drawn at random: the data is the same for every seed."""
    movie = bundled("telomeres.tif")
    specimen = "telomere movie (telomeres.tif)"
    writer = DemoWriter(workdir)
    full = (slice(None), slice(None))
    writer.train("a", "noisy_frames_a.tif", movie[A_FRAMES], "TYX", specimen,
                 region(A_FRAMES, *full, shape=movie.shape))
    starts = range(B_FRAMES.start, B_FRAMES.stop - MEAN_FRAMES + 1, B_STRIDE)
    means = np.stack([movie[t:t + MEAN_FRAMES].astype(np.float64).mean(0) for t in starts])
    writer.train("b", "mean16_b.tif", to_uint16(means), "TYX", specimen,
                 region(B_FRAMES, *full, shape=movie.shape))
    block = movie[TEST_FRAMES].astype(np.float64)
    for index in TEST_INDICES:
        others = np.delete(block, index, axis=0).mean(0)
        frame = TEST_FRAMES.start + index
        writer.test(f"noisy_frame_{frame:03d}.tif", movie[frame], "YX", specimen,
                    region(TEST_FRAMES, *full, shape=movie.shape), reference=to_uint16(others))
    notes = [
        "Real noise (UTOM_DENOISE_DEMO=real): the "
        "bundled 96 frames of the Spotiflow live-cell telomere movie (133×162 px). Domain A: "
        f"{A_FRAMES.stop - A_FRAMES.start} single frames {A_FRAMES.start}–{A_FRAMES.stop - 1} "
        f"(real low-SNR); domain B: {len(starts)} means of {MEAN_FRAMES} consecutive frames "
        f"within frames {B_FRAMES.start}–{B_FRAMES.stop - 1} (stride {B_STRIDE}; real "
        f"high-SNR); held out: frames {TEST_FRAMES.start}–{TEST_FRAMES.stop - 1}.",
        f"Test: single frames {', '.join(str(TEST_FRAMES.start + i) for i in TEST_INDICES)}; "
        "reference of each: the mean of the other 15 frames of the held-out block — a real "
        "high-SNR image with independent noise (σ/√15 left) and slight motion blur, not exact "
        "ground truth. One field of view: the split is in time, so B shows the same cells "
        "at other times.",
    ]
    return writer.finish(notes)


def degrade(image: np.ndarray, rng: np.random.Generator, offset: float,
            peak: float) -> np.ndarray:
    """The simulated low-SNR image: shot and read noise at PHOTONS (float)."""
    return poisson_gaussian(image, PHOTONS, READ_NOISE, rng, offset, peak)


def simulated_noise_data(workdir: Path, seed: int) -> TaskData:
    """Confocal nuclei with Poisson–Gaussian noise: A = noisy XY slices of the left band,
    B = clean slices of the right band, test = noisy slices of the middle band + clean ones."""
    volume = bundled("nuclei.tif")
    rng = np.random.default_rng(seed)
    peak = float(np.percentile(volume, 99.9))
    offset = float(np.percentile(volume, 1))

    def noisy(stack: np.ndarray) -> np.ndarray:
        return to_uint16(degrade(stack, rng, offset, peak))

    cut_a, cut_test, cut_b = bands(volume.shape[2])
    specimen = "confocal nuclei (nuclei.tif)"
    every = (slice(None), slice(None))
    writer = DemoWriter(workdir)
    writer.train("a", "noisy_slices_a.tif", noisy(volume[:, :, cut_a]), "ZYX", specimen,
                 region(*every, cut_a, shape=volume.shape), pixel_size=NUCLEI_PIXEL,
                 truth=volume[:, :, cut_a])
    writer.train("b", "clean_slices_b.tif", volume[:, :, cut_b], "ZYX", specimen,
                 region(*every, cut_b, shape=volume.shape), pixel_size=NUCLEI_PIXEL)
    for z in TEST_SLICES:
        clean = volume[z, :, cut_test]
        writer.test(f"noisy_slice_{z:02d}.tif", noisy(clean), "YX", specimen,
                    region(slice(z, z + 1), slice(None), cut_test, shape=volume.shape),
                    reference=clean, pixel_size=NUCLEI_PIXEL)
    notes = [
        "SIMULATED noise on real data (default; UTOM_DENOISE_DEMO=real for real noise): "
        "bundled confocal nuclei "
        f"{volume.shape} (ZYX). Poisson–Gaussian noise with {PHOTONS:g} photons at the 99.9th "
        f"percentile above the camera baseline (1st percentile) and {READ_NOISE:g} photon read "
        f"noise, seed {seed}.",
        f"Split by columns of every XY slice: A (noisy) {cut_a.start}:{cut_a.stop}, held-out "
        f"test {cut_test.start}:{cut_test.stop}, B (clean) {cut_b.start}:{cut_b.stop}. Test: "
        f"noisy slices z = {', '.join(map(str, TEST_SLICES))} of the test band; reference: "
        "the same slices before noise (exact ground truth).",
    ]
    return writer.finish(notes)


VARIANTS = {"real": real_noise_data, "simulated": simulated_noise_data}


def demo_data(workdir: Path, seed: int) -> TaskData:
    """The variant UTOM_DENOISE_DEMO names (simulated noise with exact ground truth by default)."""
    variant = os.environ.get(VARIANT_ENV, "simulated")
    if variant not in VARIANTS:
        raise UtomError(f"{VARIANT_ENV}={variant!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant](workdir, seed)


TASK = Task(
    name="denoise",
    summary="low-SNR → high-SNR fluorescence",
    domain_a=Domain(name="low-SNR fluorescence", channels=1, dtype=PixelType.uint16,
                    saliency_smooth=1.5),
    domain_b=Domain(name="high-SNR fluorescence", channels=1, dtype=PixelType.uint16),
    training={"shared_range": True, "anchor_sigma": 2.0, "run_checkpoint": "best"},
    demo_data=demo_data,
    evaluators=["psnr", "ssim", "content"],
)
