"""Example utom plugin: one task with its own channel counts, data loader and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from utom_core.domain import Domain
from utom_core.hookspecs import hookimpl
from utom_core.task import Task, TaskData

SIZE = 192
"""Side of each synthetic image in pixels."""


def _spots(rng: np.random.Generator, count: int) -> np.ndarray:
    """Two channels of sharp Gaussian spots (sigma 1 px) on a dark background, float."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.zeros((2, SIZE, SIZE))
    for channel in range(2):
        for y, x, amp in zip(rng.uniform(0, SIZE, count), rng.uniform(0, SIZE, count),
                             rng.uniform(0.5, 1.0, count), strict=True):
            image[channel] += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2.0)
    return image


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur per channel through the FFT (periodic borders; spots stay inside)."""
    fy = np.fft.fftfreq(SIZE)[:, None]
    fx = np.fft.fftfreq(SIZE)[None, :]
    otf = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * otf))


def _to_uint16(image: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    scaled = 200 + 3000 * image + rng.normal(0, noise, image.shape)
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


def build_data(workdir: Path, seed: int) -> TaskData:
    """Unpaired training images (different random spots per domain) and held-out pairs."""
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)

    def save(name: str, image: np.ndarray) -> Path:
        path = workdir / name
        tifffile.imwrite(path, image, metadata={"axes": "CYX"})
        return path

    a = [save(f"blurred_{i}.tif", _to_uint16(_blur(_spots(rng, 60), 2.0), rng, 40))
         for i in range(3)]
    b = [save(f"sharp_{i}.tif", _to_uint16(_spots(rng, 60), rng, 10)) for i in range(3)]
    truth = _spots(rng, 60)
    test = [save("test_blurred.tif", _to_uint16(_blur(truth, 2.0), rng, 40))]
    reference = [save("test_sharp.tif", _to_uint16(truth, rng, 0))]
    return TaskData(a=a, b=b, test=test, reference=reference,
                    notes=["synthetic two-colour spots, blurred (sigma 2 px) with Gaussian noise"])


TASK = Task(
    name="example-spots",
    summary="blurred 2-colour spots → sharp spots (example plugin)",
    domain_a=Domain(name="blurred spots", channels=2, per_channel=True),
    domain_b=Domain(name="sharp spots", channels=2, per_channel=True),
    training={"n_blocks": 2},
    demo_data=build_data,
    evaluators=["psnr", "ssim", "content"],
)


@hookimpl
def register_tasks(register):
    register(TASK)
