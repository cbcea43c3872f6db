"""Restoration on structures the demos do not show, each scored against its input floor.

For every case of ``utom_tasks.structures`` (puncta, meshwork, sparse cells, neurites; each
for ``sr`` and ``denoise``) the real command ``utom run TASK --a … --b … --test …
--reference …`` trains at ``--budget`` (default demo) as a new user would, with automatic
thresholds. Printed per case: PSNR and SSIM of the prediction against the clean reference,
the input's own scores (the floor: doing nothing), the gain, whether the case holds the
floor (within 0.5 dB and 0.01 SSIM, the restoration issue's tolerance), the thresholds and
where they came from. Drawn: ``structures.png``, one row per case: input | prediction |
reference. ``--jobs`` runs cases in parallel, one thread each.

    python benchmarks/structures.py --out /tmp/structures                 # demo budget, ~1 h
    python benchmarks/structures.py --budget smoke --cases sr:neurites    # wiring, seconds
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

import numpy as np
import tifffile

from utom_core.evaluation.figures.panels import save_panel
from utom_tasks.structures import CASE_TASKS, STRUCTURES, structure_case

PSNR_TOLERANCE, SSIM_TOLERANCE = 0.5, 0.01
"""How far below its floor a case may score and still count as holding it."""


def run_case(task: str, structure: str, budget: str, seed: int, out: Path,
             settings: list[str]) -> dict:
    """Build the case and train, predict and evaluate it with ``utom run`` (one thread)."""
    folder = out / f"{task}-{structure}"
    data = structure_case(task, structure, folder / "data", seed)
    command = [sys.executable, "-m", "utom_core", "run", task, "--budget", budget,
               "--seed", str(seed), "--out", str(folder / "run"), "--overwrite"]
    for setting in settings:
        command += ["--set", setting]
    for flag, paths in (("--a", data.a), ("--b", data.b), ("--test", data.test),
                        ("--reference", data.reference)):
        for path in paths:
            command += [flag, str(path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", UTOM_PROGRESS_SECONDS="600")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"task": task, "structure": structure, "error": done.stderr.strip()[-300:]}
    record = json.loads((folder / "run" / "metrics.json").read_text())
    metrics = record["metrics"]
    return {"task": task, "structure": structure, "seconds": time.perf_counter() - start,
            "metrics": metrics, "thresholds": record["thresholds"],
            "fractions": record["content_fractions"], "sources": record["threshold_sources"],
            "holds": (metrics["psnr"] >= metrics["psnr_input"] - PSNR_TOLERANCE
                      and metrics["ssim"] >= metrics["ssim_input"] - SSIM_TOLERANCE),
            "images": [record["images"][0][key] for key in ("test", "prediction", "reference")]}


def line(row: dict) -> str:
    name = f"{row['task']:8s} {row['structure']:13s}"
    if "error" in row:
        return f"{name} FAILED: {row['error']}"
    m = row["metrics"]
    return (f"{name} PSNR {m['psnr']:6.2f} dB (input {m['psnr_input']:6.2f}, "
            f"{m['psnr'] - m['psnr_input']:+5.2f})  SSIM {m['ssim']:.3f} (input "
            f"{m['ssim_input']:.3f}, {m['ssim'] - m['ssim_input']:+.3f})  content IoU "
            f"{m.get('content_iou', float('nan')):.2f}  "
            f"{'holds the floor' if row['holds'] else 'BELOW THE FLOOR'}  "
            f"thresholds {row['thresholds']['a']:.0f}/{row['thresholds']['b']:.0f} "
            f"({row['fractions']['a']:.1%}/{row['fractions']['b']:.1%} content, "
            f"{'/'.join(row['sources'][side].split()[0] for side in 'ab')})  "
            f"{row['seconds'] / 60:.1f} min")


def unit(path: str, lo: float, hi: float) -> np.ndarray:
    image = tifffile.imread(path).astype(np.float32)
    return np.clip(2 * (image - lo) / max(hi - lo, 1e-6) - 1, -1, 1)[None]


def panel(rows: list[dict], path: Path) -> None:
    """input | prediction | reference per case, all on the reference's display range."""
    images, labels = [], []
    for row in rows:
        if "error" in row:
            continue
        test, prediction, reference = row["images"]
        lo, hi = np.percentile(tifffile.imread(reference), [0.5, 99.8])
        images += [unit(test, lo, hi), unit(prediction, lo, hi), unit(reference, lo, hi)]
        m = row["metrics"]
        name = f"{row['task']} {row['structure']}"
        labels += [f"{name} input {m['psnr_input']:.1f} dB", f"utom {m['psnr']:.1f} dB",
                   "reference"]
    for start in range(0, len(images), 3):  # one PNG row per case, stacked by save_panel
        save_panel(path.with_name(f"{path.stem}-{start // 3}{path.suffix}"),
                   images[start:start + 3], labels[start:start + 3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cases", nargs="*", metavar="TASK:STRUCTURE",
                        default=[f"{t}:{s}" for t in CASE_TASKS for s in STRUCTURES])
    parser.add_argument("--out", type=Path, default=Path("structures-bench"))
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="a training setting for every case")
    args = parser.parse_args()
    cases = [case.split(":") for case in args.cases]
    settings = " ".join(args.settings) or "the tasks' own"
    print(f"budget {args.budget}, seed {args.seed}, {len(cases)} cases, {args.jobs} jobs "
          f"of one thread, {os.cpu_count()} CPUs, settings {settings}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_case, task, structure, args.budget, args.seed, args.out,
                               args.settings)
                   for task, structure in cases]
        rows = []
        for future in futures:
            rows.append(future.result())
            print(line(rows[-1]), flush=True)
    held = sum(row.get("holds", False) for row in rows)
    print(f"{held} of {len(rows)} cases hold their input floor")
    (args.out / "structures.json").write_text(json.dumps(rows, indent=1))
    panel(rows, args.out / "structures.png")


if __name__ == "__main__":
    main()
