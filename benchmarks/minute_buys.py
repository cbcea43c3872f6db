"""What each minute buys: test-image quality after ``utom run TASK --minutes M``, fp32 and bf16.

Runs the real command a user runs — ``utom run TASK --minutes M --threads 1 --seed S`` with
the task's defaults (model choice, test-time views), ``--set amp=false`` for fp32 — for every
task × minutes × precision asked, ``--jobs`` at once (one thread each, the rule for parallel
torch jobs on few cores), and prints one row per run from its ``metrics.json``: iterations
trained, the training loop's minutes, and the task's quality measures (for ``stain-he`` with
``UTOM_STAIN_HE_DATA`` set: the held-out band of the real core against the authors'
prediction and the real H&E; for the restoration tasks: PSNR and SSIM against the reference and
the input's own PSNR, the floor). A run folder that already holds a ``metrics.json`` is read,
not trained again, so a long table can be built over several sittings (``--finished``: train
nothing, tabulate what has finished). ``--png`` draws quality against minutes, one panel per
task and measure, one line per precision.

    UTOM_STAIN_HE_DATA=../shared/data/utom-colorectal python benchmarks/minute_buys.py \\
        --tasks stain-he --minutes 5 11 20 --jobs 2 --out /tmp/minutes --png docs/images/x.png
    python benchmarks/minute_buys.py --tasks denoise sr isotropic --minutes 5 20 60 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from utom_core.evaluation.figures.curves import curve_plot

MEASURES = {
    "stain-he": ("content_iou", "ssim", "lab_emd_tissue", "delta_e_background",
                 "periodic_artefact"),
    "denoise": ("psnr", "psnr_input", "ssim"),
    "sr": ("psnr", "psnr_input", "ssim"),
    "isotropic": ("psnr", "psnr_input", "ssim"),
    "label": ("psnr", "ssim", "content_iou"),
}
PRECISIONS = {"bf16": [], "fp32": ["--set", "amp=false"]}


def folder_of(out: Path, task: str, minutes: float, precision: str) -> Path:
    return out / f"{task}-{minutes:g}min-{precision}"


def train(out: Path, task: str, minutes: float, precision: str, seed: int,
          budget: str) -> Path:
    """The run's folder, trained by ``utom run`` unless it has finished before."""
    folder = folder_of(out, task, minutes, precision)
    if (folder / "metrics.json").is_file():
        return folder
    command = [sys.executable, "-m", "utom_core", "run", task, "--budget", budget,
               "--minutes", f"{minutes:g}", "--threads", "1",
               "--seed", str(seed), "--out", str(folder), "--overwrite",
               *PRECISIONS[precision]]
    log = out / f"{folder.name}.log"
    with open(log, "w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed: see {log}")
    return folder


def row(folder: Path, task: str) -> dict[str, float]:
    record = json.loads((folder / "metrics.json").read_text())
    found = {"iterations": float(record["iterations"]),
             "train_minutes": record["train_seconds"] / 60}
    found.update({name: float(record["metrics"][name]) for name in MEASURES[task]
                  if name in record["metrics"]})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["stain-he", "denoise", "sr", "isotropic"],
                        choices=sorted(MEASURES))
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 20.0, 60.0])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=sorted(PRECISIONS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", default="demo", help="networks and tiles (utom --budget)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path,
                        default=Path("utom-runs") / f"minute-buys-{time.strftime('%Y%m%d')}")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--finished", action="store_true",
                        help="Train nothing: tabulate and draw the runs that have finished.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [(task, minutes, precision) for task in args.tasks for minutes in args.minutes
            for precision in args.precisions
            if not args.finished
            or (folder_of(args.out, task, minutes, precision) / "metrics.json").is_file()]
    print(f"utom minute buys {time.strftime('%Y-%m-%d %H:%M')}: {len(runs)} runs, "
          f"{args.jobs} at once, 1 thread each, seed {args.seed}, budget {args.budget}, "
          f"{os.cpu_count()} CPUs",
          flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        folders = list(pool.map(lambda run: train(args.out, *run, args.seed, args.budget),
                                runs))
    results = [{"task": task, "minutes": minutes, "precision": precision,
                **row(folder, task)}
               for (task, minutes, precision), folder in zip(runs, folders, strict=True)]
    (args.out / "minute_buys.json").write_text(json.dumps(results, indent=1))
    for task in args.tasks:
        shown = MEASURES[task]
        print(f"\n{task}: | minutes | precision | iterations | training min | "
              + " | ".join(shown) + " |")
        for result in (r for r in results if r["task"] == task):
            print(f"| {result['minutes']:g} | {result['precision']} | "
                  f"{result['iterations']:.0f} | {result['train_minutes']:.1f} | "
                  + " | ".join(f"{result.get(name, float('nan')):.3f}" for name in shown)
                  + " |")
    if args.png:
        panels = {f"{task} {name}": {
            precision: [(r["minutes"], r[name]) for r in results
                        if r["task"] == task and r["precision"] == precision and name in r]
            for precision in args.precisions}
            for task in args.tasks for name in MEASURES[task] if not name.endswith("_input")}
        curve_plot(args.png, "test-image quality against training minutes (utom run "
                   "--minutes M, 1 thread)", panels)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
