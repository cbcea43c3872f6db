"""Tile grids fit any image, and stitching is exact: identity tiles give back the image."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import stitch_identity
from hypothesis import given, settings
from hypothesis import strategies as st

from utom_core.inference.tiling import Stitch, Stitcher, TileGrid, fit_spans


@pytest.mark.parametrize(("length", "tile", "overlap", "multiple"), [
    (1000, 512, 0.25, 4), (1000, 256, 0.25, 4), (16384, 512, 0.25, 4), (17, 8, 0.5, 1),
    (513, 512, 0.1, 4), (1, 64, 0.25, 4), (100, 64, 0.0, 4),
])
def test_spans_cover_with_overlap_and_aligned_starts(length, tile, overlap, multiple):
    spans = fit_spans(length, tile, overlap, multiple)
    assert spans[0].start == 0 and spans[-1].stop >= length
    assert spans[-1].stop - length < max(2 * multiple, multiple + 1)  # padding only to a multiple
    assert all(s.size <= max(tile, 2 * multiple) and s.start % multiple == 0 for s in spans)
    for a, b in itertools.pairwise(spans):
        assert a.stop - b.start >= overlap * tile  # the promised overlap, in pixels


def test_tiles_shrink_to_fit_rather_than_stride():
    # 1000 px with 512-px tiles: three tiles of 420 cover it; 512-px tiles would waste 40% more
    spans = fit_spans(1000, 512, 0.25, 4)
    assert [s.size for s in spans] == [420] * 3


@pytest.mark.parametrize("stitch", list(Stitch))
@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (5, 3), (131, 97), (64, 64), (300, 65)])
def test_identity_stitch_is_exact(stitch, shape):
    image = np.random.default_rng(1).random((2, *shape), dtype=np.float32)
    grid = TileGrid(shape, tile=32, overlap=0.25, multiple=4, stitch=stitch)
    np.testing.assert_allclose(stitch_identity(image, grid), image, rtol=0, atol=1e-6)


def test_crop_weights_are_indicators_and_blend_weights_feather():
    crop = TileGrid((200, 200), 64, 0.25, 4, Stitch.crop)
    blend = TileGrid((200, 200), 64, 0.25, 4, Stitch.blend)
    assert all(set(np.unique(w)) <= {0.0, 1.0} for w in crop.row_weights)
    inner = blend.row_weights[1]
    assert inner[0] == 0.0 and inner.max() == 1.0 and ((inner > 0) & (inner < 1)).any()


def test_stitcher_holds_one_tile_row_only():
    grid = TileGrid((4000, 3000), 256, 0.25, 4)
    stitcher = Stitcher(grid, 3)
    assert stitcher.acc.shape == (3, grid.tile_shape[0], grid.padded_shape[1])


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 150), width=st.integers(1, 150), tile=st.integers(2, 80),
       overlap=st.floats(0.0, 0.9), multiple=st.sampled_from([1, 2, 4, 8]),
       stitch=st.sampled_from(list(Stitch)))
def test_any_grid_stitches_identity_back(height, width, tile, overlap, multiple, stitch):
    image = np.random.default_rng(height * width).random((1, height, width), dtype=np.float32)
    grid = TileGrid((height, width), tile, overlap, multiple, stitch)
    np.testing.assert_allclose(stitch_identity(image, grid), image, rtol=0, atol=1e-6)
