"""``--overlap auto``: the halo is measured on the generator, and the overlap it gives makes
stitched tiles match whole-image inference to ``TOLERANCE`` (with the same frozen statistics:
the error of tiling alone), while a clearly smaller overlap does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utom_core.inference import halo
from utom_core.inference.planes import Norm, PlanePredictor, TileOptions
from utom_core.inference.tiling import Stitch
from utom_core.networks import ResnetGenerator
from utom_core.networks.norm import frozen_norm_statistics

SIDE, TILE = 512, 256


@pytest.fixture(scope="module")
def generator() -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(1, 1, 8, 2).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """Normalised (1, H, W): smooth structure and noise."""
    y, x = np.mgrid[:SIDE, :SIDE].astype(np.float32)
    rng = np.random.default_rng(0)
    data = 0.7 * np.sin(x / 47.0) * np.cos(y / 61.0) + rng.normal(0, 0.1, (SIDE, SIDE))
    return data.clip(-1, 1).astype(np.float32)[None]


def _stitched(generator, image, options, monkeypatch) -> np.ndarray:
    """Tiled prediction under the whole image's frozen statistics."""
    whole = torch.from_numpy(image[None])
    monkeypatch.setattr(PlanePredictor, "statistics",
                        lambda self, read, grid: frozen_norm_statistics(generator, whole))
    identity = type("Identity", (), {"apply": staticmethod(lambda raw, channel_axis=0: raw)})
    predictor = PlanePredictor(generator, identity, options)
    out = np.zeros((1, SIDE, SIDE), np.float32)

    def write(rows, cols, data):
        out[:, rows, cols] = data

    predictor(lambda ys, xs: image[:, ys, xs], (SIDE, SIDE), write)
    assert len(predictor.grid((SIDE, SIDE))) > 4  # really tiled
    return out


@pytest.mark.parametrize("stitch", [Stitch.crop, Stitch.blend])
def test_the_measured_overlap_matches_whole_image_inference(generator, image, stitch,
                                                            monkeypatch):
    with torch.inference_mode():
        whole = generator(torch.from_numpy(image[None]))[0].numpy()
    measured = halo.measure_halo(generator, image)
    assert measured is not None and 0 < measured < SIDE // 4
    base = TileOptions(tile=TILE, stitch=stitch, norm=Norm.image, max_pixels=TILE * TILE)
    overlap = halo.overlap_for(measured, base, generator.size_multiple)
    assert overlap < halo.MAX_OVERLAP
    options = TileOptions(**{**base.__dict__, "overlap": overlap})
    error = np.abs(_stitched(generator, image, options, monkeypatch) - whole).max()
    assert error <= halo.TOLERANCE
    # a quarter of that overlap lets the tile edges through
    small = TileOptions(**{**base.__dict__, "overlap": overlap / 4})
    assert np.abs(_stitched(generator, image, small, monkeypatch) - whole).max() > halo.TOLERANCE


def test_an_error_reaching_the_middle_of_the_window_is_not_a_halo(generator, image):
    assert halo.measure_halo(generator, image[:, :64, :64]) is None  # halo > its 16-px cut
    options = TileOptions(tile=TILE)
    assert halo.overlap_for(None, options) == halo.PAPER_OVERLAP


def test_per_tile_statistics_keep_the_paper_overlap():
    options = TileOptions(tile=TILE, norm=Norm.tile)
    assert halo.overlap_for(3, options) == halo.PAPER_OVERLAP
    crop = halo.overlap_for(10, TileOptions(tile=100), multiple=4)
    blend = halo.overlap_for(10, TileOptions(tile=100, stitch=Stitch.blend), multiple=4)
    assert (crop, blend) == (0.28, 0.5)  # 2 × (10 + 4) → 28 px; 4 × 14 = 56 px, capped at half
