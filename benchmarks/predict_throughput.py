"""Throughput of tiled prediction against whole-image inference of the same network.

The paper's ResNet-9 (ngf 64, 1→3 channels) predicts one generated uint16 image whole (one
fully-convolutional forward pass on the padded image) and then tiled through
``utom_core.predict`` with several settings; output megapixels per second are printed with
their ratio to whole-image inference. Outputs are discarded (a null sink) so both sides
measure reading, normalising, the network and stitching, not disk writes.

    python benchmarks/predict_throughput.py                      # CPU, 1024², ~5 min on 2 cores
    python benchmarks/predict_throughput.py --size 4096 --tile 1024 --device cuda
    python benchmarks/predict_throughput.py --memory             # + peak RSS, whole vs auto
    python benchmarks/predict_throughput.py --quick --amp        # both sides under bf16
    python benchmarks/predict_throughput.py --child auto --size 4096 --sample-tiles 4 --amp
                        # one side in this process, on the CPU (or --child whole): utom's default

``--overlap auto`` (``utom_core.inference.halo``) measures the generator's halo on the image
and tiles with the smallest overlap that keeps it out of the output; ``--memory`` runs whole-
image inference and that setting each in a fresh process and prints their peak RSS above the
imports, model and image (the goal: ≥ 0.9× whole-image MP/s at ≤ ¼ of its memory).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from utom_core.device import autocast
from utom_core.domain import Normalisation
from utom_core.inference import Norm, PlanePredictor, TileOptions, predict_image
from utom_core.inference.halo import measure_halo, overlap_for
from utom_core.inference.tiling import TileGrid, pad_to
from utom_core.io.base import ImageInfo
from utom_core.networks import ResnetGenerator

NORM_IN = Normalisation(low=(1000.0,), high=(40000.0,), dtype="uint16")
NORM_OUT = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype="uint8")


class ArraySource:
    """An in-memory image behind the ImageSource interface."""

    def __init__(self, data: np.ndarray) -> None:
        self.path, self.data, self.info = Path("generated"), data, ImageInfo(data.shape, data.dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return self.data[(slice(None), *region)]

    def close(self) -> None: ...


class NullSink:
    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def generated(size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(np.float32)
    image = 20000 + 15000 * np.sin(x / 97.0) * np.cos(y / 131.0)
    return image.clip(0, 65535).astype(np.uint16)[None]


def whole_image(generator: ResnetGenerator, data: np.ndarray, device: torch.device,
                amp: bool = False) -> float:
    """Seconds for one forward pass over the whole (padded) image, incl. normalisation;
    ``amp``: under bf16 autocast where the device computes bf16 natively."""
    start = time.perf_counter()
    grid = TileGrid(data.shape[1:], max(data.shape), multiple=generator.size_multiple)
    unit = NORM_IN.apply(pad_to(data, *grid.padded_shape))
    with torch.inference_mode(), autocast(device, amp):
        out = generator(torch.from_numpy(unit[None]).to(device))
        NORM_OUT.invert(out[0, :, :data.shape[1], :data.shape[2]].float().cpu().numpy())
    return time.perf_counter() - start


def timed(generator: ResnetGenerator, data: np.ndarray, options: TileOptions) -> float:
    start = time.perf_counter()
    predict_image(ArraySource(data), generator, NORM_IN, NORM_OUT, NullSink(), options)
    return time.perf_counter() - start


def auto_options(generator: ResnetGenerator, data: np.ndarray, tile: int, sample_tiles: int = 1
                 ) -> tuple[TileOptions, int | None]:
    """``--overlap auto``: the halo measured on the image's middle, the overlap it needs;
    statistics from a sample of ``sample_tiles`` tiles' pixels."""
    side = min(512, *data.shape[1:]) // generator.size_multiple * generator.size_multiple
    y0, x0 = (data.shape[1] - side) // 2, (data.shape[2] - side) // 2
    halo = measure_halo(generator, NORM_IN.apply(data[:, y0:y0 + side, x0:x0 + side]))
    base = TileOptions(tile=tile, norm=Norm.image, max_pixels=sample_tiles * tile * tile)
    return dataclasses.replace(base, overlap=overlap_for(halo, base, generator.size_multiple)), halo


def peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One setting in this fresh process: MP/s and peak RSS above what was resident before."""
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 3, args.ngf, args.blocks).eval()
    data = generated(args.size)
    options = None
    if args.child == "auto":
        options = dataclasses.replace(auto_options(generator, data, args.tile,
                                                   args.sample_tiles)[0], bf16=args.amp)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    before = peak_mb()
    start = time.perf_counter()
    if options is None:
        whole_image(generator, data, torch.device("cpu"), args.amp)
    else:
        timed(generator, data, options)
    rate = args.size**2 / 1e6 / (time.perf_counter() - start)
    print(json.dumps({"rate": rate, "above_mb": peak_mb() - before, "peak_mb": peak_mb()}))


def memory(args: argparse.Namespace) -> None:
    found = {}
    for mode in ("whole", "auto"):
        command = [sys.executable, __file__, "--child", mode, "--size", str(args.size),
                   "--tile", str(args.tile), "--ngf", str(args.ngf), "--blocks", str(args.blocks),
                   "--sample-tiles", str(args.sample_tiles),
                   *(["--amp"] if args.amp else [])]
        found[mode] = json.loads(subprocess.run(command, capture_output=True, text=True,
                                                check=True).stdout.splitlines()[-1])
        print(f"{mode:6s} (fresh process): {found[mode]['rate']:.3f} MP/s, peak RSS "
              f"{found[mode]['peak_mb']:.0f} MB, {found[mode]['above_mb']:.0f} MB above the "
              "imports, model and image")
    print(f"auto / whole: {found['auto']['rate'] / found['whole']['rate']:.2f}x MP/s at "
          f"{found['auto']['above_mb'] / found['whole']['above_mb']:.2f}x the memory "
          "(goal ≥ 0.9x at ≤ 0.25x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="Image side in pixels.")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="Only the paper and auto settings.")
    parser.add_argument("--repeat", type=int, default=2, help="Best of N runs (shared CPUs).")
    parser.add_argument("--memory", action="store_true", help="Peak RSS: whole vs auto.")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast on both sides, where the device computes it natively.")
    parser.add_argument("--sample-tiles", type=int, default=1,
                        help="Statistics sample of N tiles' pixels (utom's default 4; 1 forces "
                             "tiling of a 1024² plane, which utom's default predicts whole).")
    parser.add_argument("--child", choices=["whole", "auto"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sample_tiles < 1:
        parser.error("--sample-tiles must be at least 1")
    if args.child:
        return child(args)
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 3, args.ngf, args.blocks).eval().to(device)
    data = generated(args.size)
    mp = args.size**2 / 1e6
    with torch.inference_mode():  # warm-up (allocator, kernels)
        generator(torch.zeros(1, 1, 256, 256, device=device))
    base = mp / min(whole_image(generator, data, device, args.amp) for _ in range(args.repeat))
    print(f"ResNet-{args.blocks} ngf {args.ngf} on {device} ({torch.get_num_threads()} threads), "
          f"{args.size}² image ({mp:.2f} MP){', bf16' if args.amp else ''}")
    print(f"{'whole image (one forward pass)':56s} {base:8.3f} MP/s  1.00x")
    t = args.tile
    settings = [
        ("paper: tiles, overlap 0.25, per-tile norm, batch 1", TileOptions(
            tile=t, overlap=0.25, norm=Norm.tile, batch=1)),
        ("tiles, overlap 0.25, per-tile norm, batch 4", TileOptions(
            tile=t, overlap=0.25, norm=Norm.tile, batch=4)),
        ("tiles, overlap 0.25, per-tile norm, channels_last", TileOptions(
            tile=t, overlap=0.25, norm=Norm.tile, batch=4, channels_last=True)),
        ("tiles, overlap 0.25, image norm (sampled stats)", TileOptions(
            tile=t, overlap=0.25, norm=Norm.image, max_pixels=t * t)),
        ("tiles, overlap 0.125, image norm (sampled stats)", TileOptions(
            tile=t, overlap=0.125, norm=Norm.image, max_pixels=t * t)),
        ("default (image norm: whole up to 4 tiles, else tiles)", TileOptions(tile=t)),
    ]
    auto, halo = auto_options(generator, data, t, args.sample_tiles)
    settings.append((f"overlap auto {auto.overlap:.3f} (halo {halo} px), sampled stats", auto))
    for label, options in settings[:1] + settings[-1:] if args.quick else settings:
        options = dataclasses.replace(options, bf16=args.amp)
        grid = PlanePredictor(generator, NORM_IN, options).grid(data.shape[1:])
        rate = mp / min(timed(generator, data, options) for _ in range(args.repeat))
        computed = grid.computed_pixels() / args.size**2
        print(f"{label:56s} {rate:8.3f} MP/s  {rate / base:.2f}x  "
              f"({len(grid)} tiles of {grid.tile_shape[0]}², {computed:.2f} px computed per px)")
        generator.to(memory_format=torch.contiguous_format)
    if args.memory:
        memory(args)


if __name__ == "__main__":
    main()
