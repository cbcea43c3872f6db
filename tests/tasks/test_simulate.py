"""Simulation helpers: the stated physics holds numerically."""

import numpy as np
import pytest

from utom_tasks.simulate import (
    axial_degrade,
    gaussian_filter,
    gaussian_filter1d,
    label_channels,
    poisson_gaussian,
    pseudo_autofluorescence,
    white_tophat,
)


def test_poisson_gaussian_photon_level():
    image = np.full((200, 200), 1100.0)
    noisy = poisson_gaussian(image, 100.0, 0.0, np.random.default_rng(0), offset=100.0,
                             peak=1100.0)
    # 100 photons ↔ 1000 counts: shot noise sqrt(100) photons = 100 counts
    assert noisy.mean() == pytest.approx(1100, abs=2)
    assert noisy.std() == pytest.approx(100, rel=0.03)


def test_gaussian_filter_keeps_constants_and_mass():
    assert np.allclose(gaussian_filter(np.full((9, 9), 5.0), 2.0), 5.0)
    spike = np.zeros(41)
    spike[20] = 1.0
    blurred = gaussian_filter1d(spike, 3.0, axis=0)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.argmax(blurred) == 20


def test_axial_degrade_grid_and_blur_along_z_only():
    volume = np.zeros((13, 5, 6), np.float32)
    volume[6, 2, 3] = 1.0
    out = axial_degrade(volume, 1.0, 4)
    assert out.shape == (13, 5, 6)
    assert np.count_nonzero(out[:, 2, 3]) > 1
    assert np.count_nonzero(out.sum(axis=0)) == 1  # nothing spreads laterally
    flat = axial_degrade(np.full((9, 2, 2), 7.0), 2.0, 2)
    assert flat.shape == (9, 2, 2) and np.allclose(flat, 7.0)


def test_white_tophat_keeps_small_spots_only():
    image = np.zeros((30, 30), np.float32)
    image[5:25, 5:25] = 10.0
    image[15, 15] = 20.0
    tophat = white_tophat(image, 2)
    assert tophat[15, 15] == pytest.approx(10.0)
    assert tophat[10, 10] == pytest.approx(0.0)


def test_pseudo_autofluorescence_tissue_bright_slide_dark():
    rgb = np.full((4, 8, 3), 240, np.uint8)
    rgb[:, 4:] = (200, 80, 160)  # pink-purple stained tissue
    af = pseudo_autofluorescence(rgb)
    assert af[:, 4:].mean() > 3 * af[:, :4].mean()
    assert af[0, 5] == pytest.approx(27000, rel=0.01)  # the median tissue level


def test_label_channels_shapes_and_shell_outside_nuclei():
    nuclei = np.full((64, 64), 100.0)
    nuclei[24:40, 24:40] = 1100.0
    labels = label_channels(nuclei, 100.0, 1000.0)
    assert labels.shape == (3, 64, 64)
    assert labels[1, 32, 32] < labels[1, 32, 45]  # shell lies around, not inside
    assert labels[0, 32, 32] == pytest.approx(1100.0)
