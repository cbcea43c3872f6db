"""Previews: display conversion, overlays and atomic panel writing."""

import numpy as np
import pytest
from PIL import Image

from utom_core.evaluation.figures.panels import magenta_green_overlay, save_panel, to_display


def test_to_display_gray_maps_scale_ends():
    image = np.array([[[-1.0, 0.0, 1.0]]], dtype=np.float32)
    rgb = to_display(image)
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, :, 0].tolist() == [0, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_to_display_two_channels_magenta_green():
    image = np.stack([np.ones((2, 2)), -np.ones((2, 2))]).astype(np.float32)
    assert to_display(image)[0, 0].tolist() == [255, 0, 255]


def test_to_display_keeps_first_three_channels():
    image = np.stack([np.full((2, 2), v) for v in (1.0, -1.0, 0.0, 1.0)])
    assert to_display(image)[0, 0].tolist() == [255, 0, 128]


def test_overlay_white_where_agree_and_coloured_where_not():
    pred = np.zeros((4, 4), np.float32)
    ref = np.zeros((4, 4), np.float32)
    pred[:2] = 1.0
    ref[:, :2] = 1.0
    overlay = magenta_green_overlay(pred[None], ref[None])
    assert overlay[0, 0].tolist() == [255, 255, 255]  # both
    assert overlay[0, 3].tolist() == [255, 0, 255]  # prediction only
    assert overlay[3, 0].tolist() == [0, 255, 0]  # reference only
    assert overlay[3, 3].tolist() == [0, 0, 0]


def test_save_panel_size_and_no_leftovers(tmp_path):
    a = np.zeros((1, 10, 8), np.float32)
    b = np.zeros((3, 6, 5), np.float32)
    path = save_panel(tmp_path / "sub" / "panel.png", [a, b], ["in", "out"])
    with Image.open(path) as img:
        assert img.size == (8 + 4 + 5, 10 + 14)
    assert [p.name for p in path.parent.iterdir()] == ["panel.png"]


def test_save_panel_rejects_label_mismatch(tmp_path):
    with pytest.raises(ValueError):
        save_panel(tmp_path / "p.png", [np.zeros((1, 2, 2))], ["a", "b"])
