"""The fixed fitting sample (issue 18): no randomness, spread over every plane, bounded."""

from __future__ import annotations

import numpy as np
import tifffile

from utom_core.data.fitting import FIT_WINDOW, fit_domain, fitting_sample
from utom_core.data.images import DomainImages, lattice
from utom_tasks.denoise import TASK as DENOISE


def test_small_images_give_every_pixel():
    assert lattice([(100, 80), (30, 40)], 10_000, 64) == [(0, 0, 0, 100, 80), (1, 0, 0, 30, 40)]


def test_a_large_plane_gets_an_even_lattice_of_about_count_pixels():
    windows = lattice([(5000, 8000)], 1_000_000, 64)
    assert 0.95 <= len(windows) * 64 * 64 / 1_000_000 <= 1.1
    ys = sorted({y for _, y, _, _, _ in windows})
    xs = sorted({x for _, _, x, _, _ in windows})
    assert ys[0] < 5000 / len(ys) and ys[-1] > 5000 - 5000 / len(ys) - 64  # edge to edge
    assert xs[0] < 8000 / len(xs) and xs[-1] > 8000 - 8000 / len(xs) - 64
    assert all(0 <= y <= 5000 - 64 and 0 <= x <= 8000 - 64 for _, y, x, _, _ in windows)


def test_a_tall_stack_spreads_its_windows_over_its_planes():
    windows = lattice([(512, 512)] * 400, 1_000_000, 64)
    planes = sorted({index for index, *_ in windows})
    assert len(planes) > 200 and planes[0] < 3 and planes[-1] > 396


def test_the_fit_depends_on_the_files_only(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, (rng.gamma(2.0, 3000, (1200, 1100))).astype(np.uint16))
    fits = []
    for count in (1_000_000, 1_000_000):
        images = DomainImages([path], DENOISE.domain_a)
        try:
            samples = fitting_sample(images, count, "A")
            fits.append(fit_domain(samples, DENOISE.domain_a, "auto", "midpoint", "A"))
        finally:
            images.close()
    assert fits[0] == fits[1]
    assert 0.9e6 < samples.shape[1] <= 1.1e6 and samples.shape[1] % (FIT_WINDOW**2) == 0
