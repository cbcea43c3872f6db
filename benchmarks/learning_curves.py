"""Learning curves of utom and cyclegan on the restoration tasks, by validation while training.

For each task (denoise, sr, isotropic) and method, the task's demo data is built once, a short
trial measures the seconds per iteration, and a run planned to fill ``--minutes`` trains with
its test images as validation images: every ``--points``-th of the run the EMA generator
predicts their fixed crops (``training.validation``). Printed: PSNR of the first, best and last
validation against the input's own PSNR (the floor: doing nothing), i.e. whether longer
training lifts the task above its floor; drawn: one panel per task, one line per method.
``--jobs N`` trains N runs at once in their own processes, one thread each (the rule for
parallel torch jobs on few cores); each run still fills ``--minutes`` of wall time.

    python benchmarks/learning_curves.py --minutes 25            # the long curves (~2.5 h)
    python benchmarks/learning_curves.py --minutes 20 --jobs 2   # six runs in ~1 h on 2 cores
    python benchmarks/learning_curves.py --minutes 0.5 --out /tmp/curves   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from utom_core.config import Budget, build_config
from utom_core.evaluation.figures.curves import curve_plot
from utom_core.plugins import get_registry
from utom_core.training.train import train
from utom_core.training.trainer import Trainer
from utom_core.training.validation import rows

TASKS = ("denoise", "sr", "isotropic")
METHODS = ("utom", "cyclegan")
TRIAL = 6
"""Steps of the trial that measures a task's step time."""


def planned_iterations(task, layers: list[dict], data, folder: Path, minutes: float) -> int:
    """Iterations that fill ``minutes``, from ``TRIAL`` timed steps (nothing is written)."""
    cfg = build_config(*layers)
    run = get_registry().resolve(task, cfg)
    trainer = Trainer(task, cfg, folder / "trial", data.a, data.b, method=run.method,
                      build_generator=run.build_generator)
    trainer.step()  # warm-up
    start = time.perf_counter()
    for _ in range(TRIAL):
        trainer.step()
    seconds = (time.perf_counter() - start) / TRIAL
    for closing in (trainer.streams, trainer.images_a, trainer.images_b):
        closing.close()
    return max(2 * TRIAL, round(minutes * 60 / seconds))


def curve(task_name: str, method: str, minutes: float, points: int, seed: int,
          out: Path) -> dict:
    task = get_registry().task(task_name)
    folder = out / f"{task_name}-{method}"
    data = task.demo_data(folder / "data", seed)
    layers = [*task.config_layers(Budget.bench), {"method": method, "seed": seed}]
    iterations = planned_iterations(task, layers, data, folder, minutes)
    cfg = build_config(*layers, {"iterations": iterations,
                                 "val_every": max(1, iterations // points)})
    start = time.perf_counter()
    run = get_registry().resolve(task, cfg)
    train(task, cfg, folder / "run", data.a, data.b, method=run.method,
          build_generator=run.build_generator, show_progress=False,
          val=list(zip(data.test, data.reference, strict=True)))
    logged = rows(folder / "run")
    return {"task": task_name, "method": method, "iterations": iterations,
            "minutes": (time.perf_counter() - start) / 60, "rows": logged}


def summary(result: dict) -> str:
    """One line: PSNR first, best, last, and where content IoU (no reference) would pick."""
    logged = result["rows"]
    psnr = [r["psnr"] for r in logged]
    floor = logged[0]["psnr_input"]
    best = max(psnr)
    picked = max(logged, key=lambda r: r["content_iou"])
    verdict = "above the floor" if best > floor else "at or below the floor"
    return (f"{result['task']:10s} {result['method']:9s} {result['iterations']:6d} it "
            f"{result['minutes']:5.1f} min  PSNR first {psnr[0]:6.2f} best {best:6.2f} "
            f"(it. {logged[psnr.index(best)]['iteration']}) last {psnr[-1]:6.2f}  "
            f"IoU-picked {picked['psnr']:6.2f} (it. {picked['iteration']})  input {floor:6.2f}: "
            f"{verdict} ({best - floor:+.2f} dB)")


def one_thread() -> None:
    """Worker set-up: one intra-op thread, so parallel runs do not oversubscribe the cores."""
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="Training time per run.")
    parser.add_argument("--points", type=int, default=12, help="Validations per run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1,
                        help="Runs trained at once, one thread each (1: in this process).")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", type=Path,
                        default=Path("utom-runs") / f"learning-curves-{time.strftime('%Y%m%d')}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"utom learning curves {time.strftime('%Y-%m-%d %H:%M')}: {args.minutes} min per "
          f"run, budget bench networks, seed {args.seed}, {args.jobs} job(s)", flush=True)
    runs = [(task_name, method, args.minutes, args.points, args.seed, args.out)
            for task_name in args.tasks for method in METHODS]
    pool = (ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                initializer=one_thread) if args.jobs > 1 else None)
    results = []
    with pool or contextlib.nullcontext():
        for result in (pool.map if pool else map)(curve, *zip(*runs, strict=True)):
            results.append(result)
            print(summary(result), flush=True)
    (args.out / "learning_curves.json").write_text(json.dumps(results, indent=1))
    panels = {}
    for task_name in args.tasks:
        mine = [r for r in results if r["task"] == task_name]
        panels[f"{task_name} PSNR (dB)"] = {
            **{r["method"]: [(row["iteration"], row["psnr"]) for row in r["rows"]]
               for r in mine},
            "input (floor)": [(row["iteration"], row["psnr_input"]) for row in mine[0]["rows"]]}
    curve_plot(args.out / "learning_curves.png", "EMA generator on the test crops", panels)
    print(f"curves: {args.out / 'learning_curves.png'}")


if __name__ == "__main__":
    main()
