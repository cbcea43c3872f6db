"""What the tile pipeline and torchrun cost on a CPU: step times through utom's real trainer.

1. One process, one trainer, its tiles from three sources in turn: drawn inside the step (how
   utom sampled before the pipeline), the pipeline in-process (0 workers), and the pipeline
   with 1 worker process per domain. They take turns step by step, each round starting with
   the next, so a neighbour's load on a shared machine hits them alike; medians are printed.
   Goal: the pipeline costs < 3 %.
2. Throughput of 1 process against 2 under torchrun (gloo, one thread each), and 1 process
   with 2 threads: on 2 cores, 2 processes cannot beat 2 threads by much; the figure is what
   DDP's gradient all-reduce and the per-step stop agreement cost.

    python benchmarks/pipeline_overhead.py [--steps 30] [--ngf 24 --blocks 6 --tile 96]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from utom_core.config import TrainConfig
from utom_core.data.pipeline import TileStreams
from utom_core.domain import Domain
from utom_core.plugins import get_registry
from utom_core.task import Task
from utom_core.training import distributed
from utom_core.training.trainer import Trainer

TASK = Task(name="bench", summary="bench", domain_a=Domain(name="a", channels=1),
            domain_b=Domain(name="b", channels=1))


def images(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        yy, xx = np.mgrid[:1024, :1024]
        image = np.zeros((1024, 1024))
        for y, x in rng.uniform(0, 1024, (120, 2)):
            image += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 60.0)
        paths.append(folder / f"{name}.tif")
        tifffile.imwrite(paths[-1], (1000 + 20000 * image.clip(0, 1)
                                     + rng.normal(0, 800, image.shape)).astype(np.uint16))
    return paths


def make(args: argparse.Namespace, folder: Path, **settings: object) -> Trainer:
    """A trainer on the images ``images`` wrote into ``folder``."""
    a, b = folder / "a.tif", folder / "b.tif"
    cfg = TrainConfig(ngf=args.ngf, n_blocks=args.blocks, ndf=32, tile=args.tile,
                      iterations=10**6, sample_pixels=50_000, device="cpu", **settings)
    run = get_registry().resolve(TASK, cfg)
    return Trainer(TASK, cfg, folder / "run", [a], [b], method=run.method,
                   build_generator=run.build_generator)


class Inline:
    """Tiles drawn inside the step from one generator (how utom sampled before the pipeline)."""

    def __init__(self, streams: TileStreams) -> None:
        self.samplers, self.batch = streams.samplers, streams.batch
        self.rng = np.random.default_rng(0)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(sampler.tile_batch(self.rng, self.batch) for sampler in self.samplers)

    def close(self) -> None: ...


class Timed:
    """A tile source whose ``next`` is timed: what the step waits for its tiles."""

    def __init__(self, source: object) -> None:
        self.source, self.waits = source, []

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        start = time.perf_counter()
        batches = self.source.next()
        self.waits.append(time.perf_counter() - start)
        return batches


def step_time(trainer: Trainer, source: Timed) -> float:
    trainer.streams = source
    start = time.perf_counter()
    trainer.step()
    return time.perf_counter() - start


def single_process(args: argparse.Namespace, folder: Path) -> None:
    """One trainer, its tiles from each source in turn (the same networks and memory)."""
    torch.set_num_threads(1)
    trainer = make(args, folder)
    streams = trainer.streams
    sources = {"tiles drawn in the step (no pipeline)": Timed(Inline(streams)),
               "pipeline, in-process (num_workers 0)": Timed(streams),
               "pipeline, 1 worker per domain": Timed(TileStreams(
                   streams.samplers, streams.batch, streams.seed, 0, 1, streams.device))}
    times: dict[str, list[float]] = {label: [] for label in sources}
    for source in sources.values():  # warm-up: allocator, kernels, workers' queues
        for _ in range(2):
            step_time(trainer, source)
        source.waits.clear()
    labels = list(sources)
    for round_ in range(args.steps):  # each round starts with the next source: no source
        for label in labels[round_ % 3:] + labels[:round_ % 3]:  # always runs first
            times[label].append(step_time(trainer, sources[label]))
    base = float(np.median(times[labels[0]]))
    print(f"-- one process, 1 thread, ResNet-{args.blocks} ngf {args.ngf}, {args.tile}², "
          f"median of {args.steps} steps; 'waits': the step's wait for its tiles")
    for label, values in times.items():
        median, wait = float(np.median(values)), float(np.median(sources[label].waits))
        print(f"{label:42s} {median * 1000:8.1f} ms/step  {median / base - 1:+6.1%}   waits "
              f"{wait * 1000:6.2f} ms = {wait / median:5.2%} of the step")
    for source in sources.values():
        source.source.close()


def ddp_worker(args: argparse.Namespace, folder: Path) -> None:
    """One rank of the torchrun job: time steps after a warm-up; rank 0 reports."""
    torch.set_num_threads(args.threads)
    distributed.join("cpu")
    trainer = make(args, folder)
    for _ in range(3):
        trainer.step()
    distributed.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.step()
    distributed.any_rank(False)  # every rank done
    seconds = (time.perf_counter() - start) / args.steps
    if trainer.ranks.main:
        images_per_step = trainer.cfg.batch_size * trainer.ranks.world
        print(json.dumps({"seconds": seconds, "images_per_second": images_per_step / seconds}))
    trainer.streams.close()


def launch(args: argparse.Namespace, folder: Path, processes: int, threads: int) -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
               str(processes), "--master-port", str(port), __file__, "--ddp-worker",
               "--folder", str(folder), "--threads", str(threads), "--steps", str(args.steps),
               "--ngf", str(args.ngf), "--blocks", str(args.blocks), "--tile", str(args.tile)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def multi_process(args: argparse.Namespace, folder: Path) -> None:
    print(f"-- throughput under torchrun (gloo), {args.steps} steps after a warm-up")
    rows = [(1, 1), (1, 2), (2, 1)]
    found = {row: launch(args, folder, *row) for row in rows}
    base = found[1, 1]["images_per_second"]
    for (processes, threads), result in found.items():
        rate = result["images_per_second"]
        print(f"{processes} process(es) x {threads} thread(s){'':20s} "
              f"{result['seconds'] * 1000:8.1f} ms/step  {rate:6.2f} img/s  "
              f"{rate / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--ngf", type=int, default=24)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--tile", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--part", choices=["all", "pipeline", "torchrun"], default="all")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args, args.folder)
        return
    print(f"utom pipeline overhead {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        images(Path(tmp))
        if args.part in ("all", "pipeline"):
            single_process(args, Path(tmp))
        if args.part in ("all", "torchrun"):
            multi_process(args, Path(tmp))


if __name__ == "__main__":
    main()
