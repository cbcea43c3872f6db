"""Peak memory of streaming prediction does not grow with the image.

Generates 16-bit test images (streamed to TIFF, never held whole), predicts each in a fresh
subprocess with the same tiles and a small random ResNet, and prints every child's peak RSS
(its own ``ru_maxrss``). Target: the largest image within 1.2x of the smallest, all < 2 GB.

    python benchmarks/predict_memory.py                 # 4096² and 16384² (16384²: ~2 min)
    python benchmarks/predict_memory.py --sizes 2048 8192 --tile 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BAND = 512


def make_image(path: Path, size: int, width: int | None = None) -> None:
    """A smooth uint16 pattern plus noise, ``size`` × ``width`` (default square), written band
    by band."""
    from utom_core.io import ImageInfo, writer_for

    width = width or size
    sink = writer_for(path).create(path, ImageInfo((1, size, width), np.dtype("uint16")))
    x = np.arange(width, dtype=np.float32)
    rng = np.random.default_rng(0)
    for y0 in range(0, size, BAND):
        y = np.arange(y0, min(y0 + BAND, size), dtype=np.float32)[:, None]
        band = 20000 + 15000 * np.sin(x / 97.0) * np.cos(y / 131.0)
        band += rng.normal(0, 500, band.shape)
        sink.write((slice(y0, y0 + band.shape[0]), slice(0, width)),
                   band.clip(0, 65535).astype(np.uint16)[None])
    sink.commit()


def child(image: Path, out: Path, tile: int, batch: int) -> None:
    """Predict ``image`` into ``out`` and print peak RSS (MB) and time as JSON."""
    import torch

    from utom_core.domain import Normalisation
    from utom_core.inference import TileOptions, output_info, predict_image
    from utom_core.io import open_image, writer_for
    from utom_core.networks import ResnetGenerator

    torch.manual_seed(0)
    generator = ResnetGenerator(1, 1, ngf=4, n_blocks=1).eval()
    norm = Normalisation(low=(1000.0,), high=(40000.0,), dtype="uint16")
    start = time.perf_counter()
    source = open_image(image)
    sink = writer_for(out).create(out, output_info(source.info, 1, "uint16"), chunk=tile)
    predict_image(source, generator, norm, norm, sink, TileOptions(tile=tile, batch=batch))
    sink.commit()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb, "seconds": time.perf_counter() - start}))


def baseline() -> None:
    """Peak RSS of the imports alone."""
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import utom_core.inference  # noqa: F401

    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--format", choices=["ome.zarr", "tif"], default="ome.zarr")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.tile, args.batch)
    if args.baseline:
        return baseline()
    print(f"imports alone: {run(['--baseline'])['peak_rss_mb']:.0f} MB peak RSS")
    peaks = []
    with tempfile.TemporaryDirectory(prefix="utom-mem-", dir=".") as work:
        for size in args.sizes:
            image = Path(work) / f"in_{size}.tif"
            make_image(image, size)
            out = Path(work) / f"out_{size}.{args.format}"
            result = run(["--child", str(image), str(out), "--tile", str(args.tile),
                          "--batch", str(args.batch)])
            peaks.append(result["peak_rss_mb"])
            mp = size * size / 1e6
            print(f"{size}² uint16 ({mp:.0f} MP, input {image.stat().st_size / 2**20:.0f} MB) → "
                  f"{args.format}: peak RSS {result['peak_rss_mb']:.0f} MB, "
                  f"{result['seconds']:.0f} s ({mp / result['seconds']:.2f} MP/s), "
                  f"tile {args.tile}, batch {args.batch}")
            image.unlink()
    print(f"largest / smallest peak: {peaks[-1] / peaks[0]:.2f}x (target ≤ 1.2x, all < 2048 MB)")


if __name__ == "__main__":
    main()
