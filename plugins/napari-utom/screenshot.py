"""Regenerate docs/images/napari-widget.png: the widget docked in napari, a run loaded, the
content mask previewed and a prediction added. A real window, so the OpenGL canvas is
drawn too (Qt's xcb platform under Xvfb; Debian: xvfb xauth libxcb-icccm4 libxcb-keysyms1).
The image shown was made from a smoke run of the denoise demo:

    utom run denoise --budget smoke --iterations 300 --set preview_every=100 --out /tmp/shot
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
        python plugins/napari-utom/screenshot.py /tmp/shot/run \
        /tmp/shot/data/noisy_slice_24.tif docs/images/napari-widget.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
import tifffile
from qtpy.QtWidgets import QApplication


def main(run: Path, image: Path, out: Path) -> None:
    viewer = napari.Viewer(title="napari-utom")
    viewer.window.resize(1500, 900)
    _, widget = viewer.window.add_plugin_dock_widget("napari-utom", "utom")
    layer = viewer.add_image(tifffile.imread(image), name=image.stem)
    widget.load_run(run)
    widget.preview()
    viewer.layers.selection.active = layer
    widget.predict()
    while widget.worker is not None:
        QApplication.processEvents()
    viewer.layers[layer.name].visible = False
    viewer.layers.move(len(viewer.layers) - 1, 0)  # the prediction under the mask
    viewer.layers.selection.active = layer
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:4]))
