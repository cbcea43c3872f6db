"""Training speed: seconds per iteration and achieved GFLOP/s against a measured fp32 peak.

A full-size UTOM step (ResNet-9 ngf 64 generators, 70x70 PatchGANs, 128x128 tiles, 1 → 1
channels) is run through the real Trainer — data sampling included — and its FLOPs are
counted with torch's FlopCounterMode. The peak is a large fp32 matmul in the same process.
A profiled step splits the time into the convolution kernels (oneDNN, forward and backward)
and everything else, so the report says how much of the gap to peak is the kernels' own and
how much is ours.

    python benchmarks/train_speed.py [--tile 128] [--ngf 64] [--blocks 9] [--steps 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch.utils.flop_counter import FlopCounterMode

from utom_core.config import TrainConfig
from utom_core.domain import Domain
from utom_core.plugins import get_registry
from utom_core.task import Task
from utom_core.training.trainer import Trainer


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of an n x n matmul, best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


CONV_KERNELS = ("aten::mkldnn_convolution", "aten::convolution_backward",
                "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward")


def conv_share(trainer: Trainer) -> float:
    """Fraction of a profiled step's CPU time spent inside convolution kernels."""
    with torch.profiler.profile() as prof:
        trainer.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_KERNELS)
    return conv / total


def make_trainer(workdir: Path, tile: int, ngf: int, blocks: int, channels_last: bool,
                 **settings: object) -> Trainer:
    """A Trainer of the default configuration at this size; ``settings`` override more fields
    (``amp``, ``upsampling``: benchmarks/step_vs_authors.py)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = (1000 + 20000 * rng.random((1024, 1024))).astype(np.uint16)
        tifffile.imwrite(workdir / f"{name}.tif", image)
    task = Task(name="bench", summary="bench", domain_a=Domain(name="a", channels=1),
                domain_b=Domain(name="b", channels=1))
    cfg = TrainConfig(tile=tile, ngf=ngf, n_blocks=blocks, iterations=10**6, min_content=0.0,
                      sample_pixels=10_000, threshold_a="auto", threshold_b="auto",
                      **settings)
    run = get_registry().resolve(task, cfg)
    trainer = Trainer(task, cfg, workdir / "run", [workdir / "a.tif"], [workdir / "b.tif"],
                      method=run.method, build_generator=run.build_generator)
    if channels_last:
        for net in trainer.modules.values():
            net.to(memory_format=torch.channels_last)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(Path(tmp), args.tile, args.ngf, args.blocks, args.channels_last)
        trainer.step()  # warm-up
        with FlopCounterMode(display=False) as counter:
            trainer.step()
        flops = counter.get_total_flops()
        conv_flops = sum(count for op, count in counter.get_flop_counts()["Global"].items()
                         if "convolution" in str(op))
        share = conv_share(trainer)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.step()
            times.append(time.perf_counter() - start)
    peak = matmul_peak()
    step = float(np.median(times))
    achieved = flops / step / 1e9
    print(f"threads               {torch.get_num_threads()}")
    layout = ", channels_last" if args.channels_last else ""
    print(f"step                  ResNet-{args.blocks} ngf {args.ngf}, "
          f"{args.tile}x{args.tile}, 1 → 1{layout}")
    print(f"FLOP per step         {flops / 1e9:.1f} GFLOP")
    print(f"seconds per iteration {step:.3f} (median of {args.steps}; min {min(times):.3f})")
    print(f"achieved              {achieved:.1f} GFLOP/s")
    print(f"fp32 matmul peak      {peak:.1f} GFLOP/s")
    print(f"fraction of peak      {achieved / peak:.1%}")
    conv_rate = conv_flops / (share * step) / 1e9
    print(f"in conv kernels       {share:.1%} of the step, {conv_flops / flops:.1%} of its FLOPs, "
          f"{conv_rate:.1f} GFLOP/s = {conv_rate / peak:.1%} of peak")
    print(f"outside conv kernels  {(1 - share) * step:.3f} s per iteration (norms, pads, "
          "losses, Adam, EMA, data)")


if __name__ == "__main__":
    main()
