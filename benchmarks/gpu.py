"""GPU figures in one command (about 8 minutes on one H200), through utom's real trainer.

Prints seconds per iteration of the paper's setting (ResNet-9 ngf 64, 70×70 PatchGANs, 128²
tiles, 1 → 1 channel, batch 1) in fp32, bf16, bf16 + channels_last and bf16 + torch.compile;
the data pipeline's own ceiling (tiles per second with the networks switched off); the same at
512² tiles 1 → 3 (stain-he's shapes); prediction MP/s on an 8192² image; and the GPU memory
peak of each. The goal is the paper's 50 000 iterations in 15 minutes (18 ms per iteration).

    python benchmarks/gpu.py                  # a CUDA machine
    python benchmarks/gpu.py --cpu-smoke      # reduced sizes on a CPU: the script itself works

``--cpu-smoke`` runs every section at toy sizes; its torch.compile rows use the aot_eager
backend (dynamo and AOTAutograd, not inductor's minutes of C++ compiling on a small CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

from utom_core.config import TrainConfig
from utom_core.device import native_bf16
from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.inference import TileOptions, predict_image
from utom_core.io.base import ImageInfo
from utom_core.networks import ResnetGenerator
from utom_core.plugins import get_registry
from utom_core.task import Task
from utom_core.training.trainer import Trainer

GOAL_ITERATIONS, GOAL_SECONDS = 50_000, 15 * 60
GRAY = Domain(name="gray", channels=1)
RGB = Domain(name="rgb", channels=3, dtype=PixelType.uint8, background=Polarity.bright)


@dataclass(frozen=True)
class Sizes:
    """What one run of the script measures at."""

    ngf: int
    blocks: int
    ndf: int
    small: int
    large: int
    image: int
    predict: int
    warmup: int
    steps: int


GPU = Sizes(ngf=64, blocks=9, ndf=64, small=128, large=512, image=2048, predict=8192,
            warmup=10, steps=50)
SMOKE = Sizes(ngf=8, blocks=2, ndf=8, small=32, large=64, image=128, predict=256,
              warmup=1, steps=2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, found: list[str]) -> Iterator[None]:
    """The peak memory of the block: the GPU's allocator, or this process's RSS on a CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        found.append(f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        found.append(f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def images(folder: Path, side: int) -> dict[str, Path]:
    """Generated training images: blobs on a dark background (1 channel, uint16) and their
    bright-background RGB counterparts (uint8), unpaired."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side]
    blobs = np.zeros((side, side), np.float32)
    for y, x in rng.uniform(0, side, (side // 8, 2)):
        blobs += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 60.0).astype(np.float32)
    blobs = blobs.clip(0, 1)
    paths = {name: folder / f"{name}.tif" for name in ("noisy", "clean", "rgb")}
    tifffile.imwrite(paths["noisy"], (1000 + 20000 * blobs + rng.normal(0, 1500, blobs.shape))
                     .clip(0, 65535).astype(np.uint16))
    tifffile.imwrite(paths["clean"], (1000 + 20000 * blobs.T).astype(np.uint16))
    rgb = 235 - np.stack([150 * blobs, 200 * blobs, 90 * blobs], axis=-1)
    tifffile.imwrite(paths["rgb"], rgb.clip(0, 255).astype(np.uint8), photometric="rgb")
    return paths


def trainer(paths: dict[str, Path], sizes: Sizes, tile: int, rgb: bool, workdir: Path,
            **settings: object) -> Trainer:
    task = Task(name="bench", summary="bench", domain_a=GRAY, domain_b=RGB if rgb else GRAY)
    cfg = TrainConfig(ngf=sizes.ngf, n_blocks=sizes.blocks, ndf=sizes.ndf, tile=tile,
                      iterations=10**6, sample_pixels=100_000, **settings)
    b = paths["rgb" if rgb else "clean"]
    run = get_registry().resolve(task, cfg)
    return Trainer(task, cfg, workdir / "run", [paths["noisy"]], [b], method=run.method,
                   build_generator=run.build_generator)


def seconds_per_step(run: Trainer, sizes: Sizes, warmup: int) -> float:
    for _ in range(warmup):  # compiles, autotunes, fills the workers' queues
        run.step()
    sync(run.device)
    start = time.perf_counter()
    for _ in range(sizes.steps):
        run.step()
    sync(run.device)
    return (time.perf_counter() - start) / sizes.steps


def pipeline_ceiling(run: Trainer, sizes: Sizes) -> float:
    """Tiles per second the pipeline delivers onto the device with no network running."""
    for _ in range(sizes.warmup):
        run.streams.next()
    sync(run.device)
    start = time.perf_counter()
    count = 4 * sizes.steps
    for _ in range(count):
        run.streams.next()
    sync(run.device)
    return 2 * run.cfg.batch_size * count / (time.perf_counter() - start)


class ArraySource:
    """An in-memory image behind the ImageSource interface."""

    def __init__(self, data: np.ndarray) -> None:
        self.path, self.data, self.info = Path("generated"), data, ImageInfo(data.shape,
                                                                             data.dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return self.data[(slice(None), *region)]


class NullSink:
    def write(self, region: tuple[slice, ...], block: np.ndarray) -> None: ...


def prediction_rate(sizes: Sizes, device: torch.device) -> float:
    """MP/s of tiled prediction (ResNet-9 ngf 64, 1 → 3) of one generated image in memory,
    reading, normalising, the network and stitching included, writing not (a null sink)."""
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 3, sizes.ngf, sizes.blocks).eval().to(device)
    side = sizes.predict
    y, x = np.mgrid[:side, :side].astype(np.float32)
    data = (20000 + 15000 * np.sin(x / 97.0) * np.cos(y / 131.0)).astype(np.uint16)[None]
    norm_in = Normalisation(low=(1000.0,), high=(40000.0,), dtype="uint16")
    norm_out = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype="uint8")
    options = TileOptions(batch=4 if device.type == "cuda" else 1)
    sync(device)
    start = time.perf_counter()
    predict_image(ArraySource(data), generator, norm_in, norm_out, NullSink(), options)
    sync(device)
    return side * side / 1e6 / (time.perf_counter() - start)


class Report:
    """Rows printed as they come, within a time budget (later rows are skipped, said so)."""

    def __init__(self, minutes: float) -> None:
        self.start, self.budget = time.perf_counter(), minutes * 60

    def row(self, label: str, measure: Callable[[], str], cost: float = 0.0) -> None:
        left = self.budget - (time.perf_counter() - self.start)
        if left < cost:
            print(f"{label:44s} skipped: {left:.0f} s of the budget left, it needs ~{cost:.0f}",
                  flush=True)
            return
        began = time.perf_counter()
        figure = measure()
        print(f"{label:44s} {figure}   [{time.perf_counter() - began:.0f} s]", flush=True)


def training_row(paths: dict[str, Path], sizes: Sizes, tile: int, rgb: bool, device: torch.device,
                 workdir: Path, best: list[float], warmup: int | None = None,
                 **settings: object) -> Callable[[], str]:
    def measure() -> str:
        memory: list[str] = []
        with peak_memory(device, memory):
            run = trainer(paths, sizes, tile, rgb, workdir, **settings)
            seconds = seconds_per_step(run, sizes, sizes.warmup if warmup is None else warmup)
        run.streams.close()
        batch = int(settings.get("batch_size", 1))
        if tile == sizes.small and not rgb and batch == 1:
            best.append(seconds)
        return (f"{seconds * 1000:8.1f} ms/iteration  {batch / seconds:7.1f} img/s  "
                f"peak {memory[0]}")
    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="Toy sizes on a CPU.")
    parser.add_argument("--minutes", type=float, default=8.0, help="Time budget.")
    args = parser.parse_args()
    sizes = SMOKE if args.cpu_smoke else GPU
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke on a CPU")
    if args.cpu_smoke:  # dynamo + AOTAutograd, without inductor's C++ compiling
        torch.compile = functools.partial(torch.compile, backend="aot_eager")
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.machine()} (bf16 rows run in "
                 f"{'bf16' if native_bf16(device) else 'fp32: no native bf16'})")
    print(f"utom GPU benchmark {time.strftime('%Y-%m-%d %H:%M')}: {name}, torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs"
          + (" (CPU smoke: toy sizes)" if args.cpu_smoke else ""), flush=True)
    report, best = Report(args.minutes), []
    with tempfile.TemporaryDirectory() as tmp:
        paths = images(Path(tmp), sizes.image)
        small, large = sizes.small, sizes.large
        print(f"-- ResNet-{sizes.blocks} ngf {sizes.ngf}, {small}², 1 → 1, batch 1")
        for label, settings, cost in (
                ("fp32", dict(amp=False), 20), ("bf16", {}, 20),
                ("bf16 + channels_last", dict(channels_last=True), 20),
                ("bf16 + torch.compile", dict(compile=True), 150),
                ("bf16, batch 4 (not the paper's)", dict(batch_size=4), 20)):
            report.row(label, training_row(paths, sizes, small, False, device, Path(tmp), best,
                                           warmup=3 * sizes.warmup if "compile" in settings
                                           else None, **settings), cost)
        report.row("data pipeline alone (networks off)", lambda: (
            f"{pipeline_ceiling(trainer(paths, sizes, small, False, Path(tmp)), sizes):8.0f} "
            "tiles/s"), 15)
        print(f"-- the same at {large}², 1 → 3 (stain-he)")
        report.row("bf16", training_row(paths, sizes, large, True, device, Path(tmp), best), 30)
        report.row("bf16 + torch.compile", training_row(
            paths, sizes, large, True, device, Path(tmp), best, warmup=3 * sizes.warmup,
            compile=True), 150)
        report.row("data pipeline alone (networks off)", lambda: (
            f"{pipeline_ceiling(trainer(paths, sizes, large, True, Path(tmp)), sizes):8.0f} "
            "tiles/s"), 15)
        print(f"-- prediction, ResNet-{sizes.blocks} ngf {sizes.ngf} 1 → 3, "
              f"{sizes.predict}² image")
        memory: list[str] = []

        def predicted() -> str:
            with peak_memory(device, memory):
                rate = prediction_rate(sizes, device)
            return f"{rate:8.1f} MP/s  peak {memory[0]}"

        batch = 4 if device.type == "cuda" else 1
        report.row(f"tiles 512², overlap 0.25, batch {batch}", predicted, 60)
    if best:
        fastest = min(best)
        minutes = fastest * GOAL_ITERATIONS / 60
        print(f"-- {GOAL_ITERATIONS} iterations at the fastest {small}² setting: "
              f"{minutes:.1f} min (goal {GOAL_SECONDS / 60:.0f} min, "
              f"{GOAL_SECONDS / GOAL_ITERATIONS * 1000:.0f} ms/iteration): "
              + ("met" if minutes * 60 <= GOAL_SECONDS else
                 f"{minutes * 60 / GOAL_SECONDS:.1f}x off"))


if __name__ == "__main__":
    main()
