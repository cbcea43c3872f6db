"""How far a tile's edge reaches into its output, measured on the generator, and the smallest
overlap that keeps it out of the stitched image (``utom predict --overlap auto``).

With frozen (image-level) normalisation statistics a tile's prediction equals whole-image
inference except near its edges, where the network's zero padding stands in for the missing
neighbours. How far that error travels depends on the trained weights (the *effective*
receptive field, far smaller than the nominal one), so it is measured, not assumed: a window
of the image is predicted whole and as a tile cut out of its middle, both under the window's
frozen statistics; the halo is one more than the largest distance from the cut at which any
output channel differs by more than ``TOLERANCE``. Crop stitching keeps every output pixel at
least overlap/2 of a tile from its edge (blend: overlap/4), hence the overlap.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from utom_core.domain import Normalisation
from utom_core.inference.planes import Norm, TileOptions
from utom_core.inference.tiling import Stitch, pad_to
from utom_core.io.base import ImageSource
from utom_core.networks.base import Generator
from utom_core.networks.norm import frozen_norm_statistics

TOLERANCE = 1.0 / 255
"""Largest difference from whole-image inference allowed, in the network's [-1, 1] output
units: half a grey level of an 8-bit output (a sixth of a percent of the range)."""
WINDOW = 512
"""Side of the measuring window (its middle half is the tile)."""
PAPER_OVERLAP = 0.25
MAX_OVERLAP = 0.5


def measure_halo(generator: Generator, window: np.ndarray, tolerance: float = TOLERANCE
                 ) -> int | None:
    """Pixels from a tile edge within which the output differs from whole-image inference by
    more than ``tolerance``; None when the error reaches the middle of the measured tile
    (``window``: normalised (C, H, W), sides multiples of the generator's size multiple)."""
    multiple = generator.size_multiple
    cut = max(window.shape[-1] // 4 // multiple, 1) * multiple
    device = next(generator.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(window[None])).to(device)
    with torch.inference_mode(), frozen_norm_statistics(generator, x):
        whole = generator(x)[..., cut:-cut, cut:-cut]
        tile = generator(x[..., cut:-cut, cut:-cut])
    error = (whole - tile).abs().amax(dim=(0, 1)).float().cpu().numpy()
    rows, cols = np.indices(error.shape)
    edge = np.minimum.reduce([rows, cols, error.shape[0] - 1 - rows, error.shape[1] - 1 - cols])
    far = edge[error > tolerance]
    halo = int(far.max()) + 1 if far.size else 0
    return None if halo >= min(error.shape) // 2 or halo >= cut else halo


def overlap_for(halo: int | None, options: TileOptions, multiple: int = 1) -> float:
    """The smallest overlap whose stitched tiles keep ``halo`` out of the output (at least one
    size multiple, at most half a tile); the paper's 25 % with per-tile statistics, where
    tiles differ for another reason, or when the halo could not be measured."""
    if halo is None or options.norm is Norm.tile:
        return PAPER_OVERLAP
    share = 2 if options.stitch is Stitch.crop else 4  # margin kept: overlap/2 or overlap/4
    shared = share * (halo + multiple)  # + one multiple: tile starts are rounded to them
    return min(MAX_OVERLAP, math.ceil(shared / multiple) * multiple / options.tile)


def centre_window(source: ImageSource, norm: Normalisation, multiple: int) -> np.ndarray:
    """The normalised middle of the first plane, up to ``WINDOW`` pixels square."""
    height, width = source.info.shape[-2:]
    side = max(min(WINDOW, height, width) // multiple, 2) * multiple
    y0, x0 = max((height - side) // 2, 0), max((width - side) // 2, 0)
    region: tuple[slice, ...] = (slice(y0, y0 + side), slice(x0, x0 + side))
    if len(source.info.shape) == 4:
        region = (slice(0, 1), *region)
    raw = source.read(region)
    return norm.apply(pad_to(raw.reshape(raw.shape[0], *raw.shape[-2:]), side, side))


def auto_overlap(generator: Generator, source: ImageSource, norm: Normalisation,
                 options: TileOptions) -> tuple[float, int | None]:
    """``--overlap auto``: the overlap measured on ``source`` and the halo it came from."""
    multiple = generator.size_multiple
    halo = measure_halo(generator, centre_window(source, norm, multiple))
    return overlap_for(halo, options, multiple), halo
