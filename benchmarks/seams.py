"""How visible are tile seams, and how far is tiled prediction from whole-image inference?

Predicts a real whole tissue core (``AF_8.png``, autofluorescence, 1000×1000 uint16) with a
stain-he-shaped generator (1 → 3 channels) whole and tiled in several ways, and prints per
setting:

- seam score: mean |difference between neighbouring pixels across the lines where one tile's
  contribution meets the next| / mean |difference between neighbouring pixels elsewhere|
  (1.0 = seams invisible; whole-image inference measured on the same lines for reference);
- error vs whole-image inference: mean and max |difference| in 8-bit output units.

A trained run gives the meaningful numbers (``--run RUN_DIR``); without one a randomly
initialised ResNet is used, which the output says.

    python benchmarks/seams.py                        # random ResNet-9 ngf 32, ~1 min on 2 cores
    python benchmarks/seams.py --run runs/stain-he --tile 256
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
from pathlib import Path

import numpy as np
import torch

from utom_core.domain import Domain, Normalisation, fit_normalisation
from utom_core.inference import Norm, TileOptions, predict_image
from utom_core.inference.tiling import Stitch, TileGrid, pad_to, padded_length
from utom_core.io import open_image
from utom_core.networks import ResnetGenerator, frozen_norm_statistics

IMAGE = Path(__file__).resolve().parents[1] / "../shared/data/utom-colorectal/AF_8.png"


class ArraySink:
    """Collects the prediction in memory (the image is small)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.data = np.zeros(shape, np.uint8)

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.data[(slice(None), *region)] = data

    def commit(self) -> None: ...
    def abort(self) -> None: ...


def seam_lines(grid: TileGrid) -> tuple[list[int], list[int]]:
    """Rows and columns where the crop stitch passes from one tile to the next."""
    def cuts(spans):
        return [(a.stop + b.start) // 2 for a, b in itertools.pairwise(spans)]
    return cuts(grid.rows), cuts(grid.cols)


def seam_score(image: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Mean |step| across seam lines over mean |step| between other neighbouring pixels."""
    image = image.astype(np.float32)
    dy = np.abs(np.diff(image, axis=1))  # dy[:, i] is the step between rows i and i + 1
    dx = np.abs(np.diff(image, axis=2))
    seam_y, seam_x = np.zeros(dy.shape[1], bool), np.zeros(dx.shape[2], bool)
    seam_y[[r - 1 for r in rows]] = True
    seam_x[[c - 1 for c in cols]] = True
    across = np.concatenate([dy[:, seam_y].ravel(), dx[:, :, seam_x].ravel()]).mean()
    inside = np.concatenate([dy[:, ~seam_y].ravel(), dx[:, :, ~seam_x].ravel()]).mean()
    return float(across / inside)


def thumbnail_reference(raw: np.ndarray, norm: Normalisation, pixels: int,
                        multiple: int) -> torch.Tensor:
    """The rejected alternative to sampled crops: the whole plane read with a stride."""
    step = math.ceil(math.sqrt(raw.shape[1] * raw.shape[2] / pixels))
    thumb = raw[:, ::step, ::step]
    size = [padded_length(n, multiple) for n in thumb.shape[1:]]
    return torch.from_numpy(norm.apply(pad_to(thumb, *size))[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--run", type=Path, help="Trained stain-he run directory (a2b).")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--ngf", type=int, default=32, help="Random generator width.")
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args()
    source = open_image(args.image.resolve())
    _, height, width = source.info.shape
    raw = source.read((slice(None), slice(None)))
    if args.run:
        from utom_core.plugins import get_registry
        from utom_core.trained import load_model

        predictor = load_model(args.run, build_generator=get_registry().build_generator)
        generator, norm_in, norm_out = (predictor.generator, predictor.source_norm,
                                        predictor.output_norm)
        model = f"trained run {args.run}"
    else:
        torch.manual_seed(0)
        generator = ResnetGenerator(1, 3, args.ngf, args.blocks).eval()
        domain = Domain(name="af", channels=1, dtype="uint16")
        norm_in = fit_normalisation(raw.reshape(1, -1), domain)
        norm_out = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype="uint8")
        model = (f"RANDOMLY INITIALISED ResNet-{args.blocks} ngf {args.ngf} (no trained run "
                 "given: seams of an untrained network)")
    print(f"{args.image.name} {height}×{width}, {model}, tile {args.tile}, "
          f"overlap {args.overlap}")

    def predict(options: TileOptions) -> np.ndarray:
        sink = ArraySink((3, height, width))
        predict_image(source, generator, norm_in, norm_out, sink, options)
        return sink.data

    whole = predict(TileOptions(tile=max(height, width)))
    grid = TileGrid((height, width), args.tile, args.overlap, generator.size_multiple)
    rows, cols = seam_lines(grid)
    budget = 4 * args.tile**2  # the default max_pixels: planes above it are tiled
    whole_reference = torch.from_numpy(norm_in.apply(raw)[None])
    tiled = dict(tile=args.tile, overlap=args.overlap)
    settings: list[tuple[str, TileOptions, contextlib.AbstractContextManager]] = [
        ("per-tile norm + crop (paper)", TileOptions(**tiled, norm=Norm.tile),
         contextlib.nullcontext()),
        ("per-tile norm + blend", TileOptions(**tiled, norm=Norm.tile, stitch=Stitch.blend),
         contextlib.nullcontext()),
        ("frozen whole-image statistics + crop", TileOptions(**tiled, norm=Norm.tile),
         frozen_norm_statistics(generator, whole_reference)),
        ("frozen whole-image statistics + blend",
         TileOptions(**tiled, norm=Norm.tile, stitch=Stitch.blend),
         frozen_norm_statistics(generator, whole_reference)),
        (f"image norm, sampled crops ({budget} px) + crop (default)",
         TileOptions(**tiled, max_pixels=budget), contextlib.nullcontext()),
        (f"image norm, sampled crops ({budget} px) + blend",
         TileOptions(**tiled, max_pixels=budget, stitch=Stitch.blend),
         contextlib.nullcontext()),
        (f"[rejected] thumbnail reference ({budget} px) + crop",
         TileOptions(**tiled, norm=Norm.tile),
         frozen_norm_statistics(generator, thumbnail_reference(
             raw, norm_in, budget, generator.size_multiple))),
    ]
    print(f"{'setting':58s} {'seam score':>10s} {'mean |err|':>10s} {'max |err|':>9s}")
    print(f"{'whole image (no tiles)':58s} {seam_score(whole, rows, cols):10.3f} "
          f"{0.0:10.2f} {0:9d}")
    for label, options, frozen in settings:
        with frozen:
            out = predict(options)
        error = np.abs(out.astype(np.int16) - whole.astype(np.int16))
        print(f"{label:58s} {seam_score(out, rows, cols):10.3f} {error.mean():10.2f} "
              f"{error.max():9d}")
    print(f"({len(grid)} tiles of {grid.tile_shape[0]}²; errors in 8-bit units of the output)")


if __name__ == "__main__":
    main()
