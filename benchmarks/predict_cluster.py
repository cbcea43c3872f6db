"""``utom predict`` in one process against ``--scheduler local:1`` and ``local:2``.

Generates 16-bit images (streamed to TIFF) and a random generator of the demo budget's size
(ResNet, ngf 24, 6 blocks, 1 → 1 channel), runs the real command for each mode with one
thread per process (``OMP_NUM_THREADS=1``: equal threads), and prints output megapixels per
second (wall time, cluster start-up included), CPU seconds per megapixel summed over all
processes (what sharing the cores with other work distorts least), the peak RSS of every
process (sampled with psutil: the client, which also runs LocalCluster's scheduler and
nannies, and each worker) and the ratio to one process. Then the peak RSS of a small and a
four times larger image in every mode (memory must stay flat), and an estimate, from the
measured cost per megapixel, for a 50 000 × 100 000 slide on 16 workers. ``utom predict``'s
defaults (8 views, fp32); ``--amp`` adds bf16 to every mode.

    python benchmarks/predict_cluster.py                        # 8192², 2048×4096 vs 8192×4096
    python benchmarks/predict_cluster.py --size 4096 --flat 1024 4096   # on 2 shared cores
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from predict_memory import make_image

MODES = {"one process": [], "local:1": ["--scheduler", "local:1"],
         "local:2": ["--scheduler", "local:2"]}


def demo_model(folder: Path) -> Path:
    """A run directory with a random generator of the demo budget's size (what predict
    loads; the weights do not change the cost)."""
    import torch

    from utom_core import trained
    from utom_core.checkpoints import save_torch
    from utom_core.config import BUDGETS, Budget, TrainConfig
    from utom_core.domain import Domain, Normalisation
    from utom_core.plugins import get_registry

    size = {k: BUDGETS[Budget.demo][k] for k in ("ngf", "n_blocks")}
    cfg = TrainConfig(**size)
    torch.manual_seed(0)
    g = get_registry().build_generator(cfg, 1, 1)
    domain = Domain(name="fluorescence", channels=1, dtype="uint16")
    norm = Normalisation(low=(1000.0,), high=(40000.0,), dtype="uint16")
    meta = trained.RunMeta(task="denoise", domain_a=domain, domain_b=domain, images_per_epoch=1,
                        normalisation_a=norm, normalisation_b=norm, threshold_a=3000.0,
                        threshold_b=3000.0)
    folder.mkdir(parents=True, exist_ok=True)
    state = g.state_dict()
    save_torch(dict(format=trained.MODEL_FORMAT, config=cfg.model_dump(mode="json"),
                    meta=meta.model_dump(mode="json"), g_ab=state, g_ba=state, ema_ab=state,
                    ema_ba=state, iteration=1), folder / trained.MODEL_FILE)
    return folder


def run(model: Path, image: Path, out: Path, extra: list[str], tile: int) -> dict:
    """Wall time, and per process its peak RSS (MB) and CPU seconds, of one ``utom predict``."""
    command = [sys.executable, "-c", "from utom_core.cli import main; main()", "predict",
               str(model), str(image), "--out", str(out), "--tile", str(tile), *extra]
    start = time.perf_counter()
    job = psutil.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[int, tuple[str, float, float]] = {}
    while job.poll() is None:
        try:
            processes = [job, *job.children(recursive=True)]
        except psutil.Error:
            processes = []
        for proc in processes:
            try:
                with proc.oneshot():
                    rss, times = proc.memory_info().rss / 2**20, proc.cpu_times()
                    role = _role(proc, job)
            except psutil.Error:  # ended meanwhile
                continue
            peak = max(rss, seen.get(proc.pid, ("", 0.0, 0.0))[1])
            seen[proc.pid] = (role, peak, times.user + times.system)
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if job.returncode:
        raise SystemExit(job.stderr.read())
    return {"seconds": seconds, "peaks": sorted((r, mb) for r, mb, _ in seen.values()),
            "cpu": sum(cpu for _, _, cpu in seen.values())}


def _role(proc: psutil.Process, client: psutil.Process) -> str:
    """LocalCluster's nannies run in the client; its workers are spawned processes."""
    if proc.pid == client.pid:
        return "client"
    return "worker" if "spawn_main" in " ".join(proc.cmdline()) else "helper"


def describe(peaks: list[tuple[str, float]]) -> str:
    shown = [f"{role} {mb:.0f}" for role, mb in peaks if role in ("client", "worker")]
    return ", ".join(shown) + " MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="Square image side (throughput).")
    parser.add_argument("--flat", type=int, nargs=2, default=[2048, 8192], metavar=("H1", "H2"),
                        help="Heights of the memory pair (width --width).")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--amp", action="store_true", help="predict in bf16 (utom predict --amp)")
    args = parser.parse_args()
    modes = {name: [*extra, *(["--amp"] if args.amp else [])] for name, extra in MODES.items()}
    print(f"{platform.node()}: {psutil.cpu_count()} cores ({platform.processor() or 'cpu'}), "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; one thread per process"
          + ("; bf16" if args.amp else ""))
    with tempfile.TemporaryDirectory(prefix="utom-cluster-", dir=".") as work:
        root = Path(work)
        model = demo_model(root / "model")
        image = root / "square.tif"
        make_image(image, args.size)
        mp = args.size**2 / 1e6
        base = base_cpu = None
        for name, extra in modes.items():
            result = run(model, image, root / f"{name.replace(':', '')}.ome.zarr", extra,
                         args.tile)
            rate = mp / result["seconds"]
            base = base or rate
            cpu = result["cpu"] / mp
            base_cpu = base_cpu or cpu
            print(f"{args.size}² uint16 ({mp:.0f} MP), {name:11s}: {rate:6.3f} MP/s "
                  f"({result['seconds']:.0f} s, {rate / base:.2f}x one process), "
                  f"{cpu:.1f} CPU-s/MP ({cpu / base_cpu:.2f}x); peak RSS "
                  f"{describe(result['peaks'])}")
            if name == "local:2":
                per_worker, cpu_per_mp = rate / 2, cpu
        slide = 50_000 * 100_000 / 1e6
        print(f"estimate, a 50k × 100k slide ({slide:.0f} MP) on 16 workers: "
              f"{slide * cpu_per_mp / 16 / 3600:.1f} h on dedicated cores ({cpu_per_mp:.1f} "
              f"CPU-s/MP measured, client included); {slide / (16 * per_worker) / 3600:.1f} h "
              f"at this run's wall rate per worker ({per_worker:.3f} MP/s, shared cores)")
        for name, extra in modes.items():
            peaks = []
            for height in args.flat:
                image = root / f"flat_{height}.tif"
                make_image(image, height, args.width)
                result = run(model, image, root / f"flat_{name.replace(':', '')}_{height}.ome.zarr",
                             extra, args.tile)
                peaks.append(max(mb for role, mb in result["peaks"]
                                 if role in ("client", "worker")))
                image.unlink()
            print(f"{name:11s}: peak RSS of the largest process {args.flat[0]}×{args.width} "
                  f"{peaks[0]:.0f} MB, {args.flat[1]}×{args.width} {peaks[1]:.0f} MB: "
                  f"{peaks[1] / peaks[0]:.2f}x (target ≤ 1.3x)")


if __name__ == "__main__":
    main()
