"""napari in a real X window (Qt's xcb platform under Xvfb), with the Debian packages
docs/napari.md lists: the canvas draws a utom OME-Zarr, and a screenshot is not blank.

The offscreen platform the other tests use cannot see a missing xcb library (napari then
aborts on start), hence a fresh interpreter on the ``xcb`` platform. Needs an X display
(``.ci/run`` runs the plugin tests under ``xvfb-run``)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_reader import write

SCRIPT = """
import sys
import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer(title="napari-utom xcb")
viewer.window.resize(900, 700)
[layer] = viewer.open(sys.argv[1], plugin="napari-utom")
assert layer.multiscale, "not multiscale"
viewer.reset_view()
for _ in range(20):
    QApplication.processEvents()
viewer.screenshot(sys.argv[2], canvas_only=True, flash=False)
print(QApplication.platformName())
viewer.close()
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (xvfb-run)")
def test_napari_window_on_xcb_draws_a_utom_store(tmp_path):
    y, x = np.mgrid[0:300, 0:300]
    data = ((np.hypot(y - 150, x - 150) < 90) * 3000 + 100).astype(np.uint16)[None]
    store = write(tmp_path / "disc.ome.zarr", data, {"y": 0.5, "x": 0.5})
    shot = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(store), str(shot)],
                            capture_output=True, text=True, timeout=240,
                            env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "xcb"
    pixels = np.asarray(Image.open(shot).convert("L"), np.float64)
    bright = pixels > 128  # the disc, drawn by the OpenGL canvas over its dark background
    assert 0.05 < bright.mean() < 0.9, f"screenshot blank? {bright.mean():.3f} bright"
    rows, cols = np.nonzero(bright)
    assert abs(rows.mean() / pixels.shape[0] - 0.5) < 0.1  # centred, as the store's disc
    assert abs(cols.mean() / pixels.shape[1] - 0.5) < 0.1
