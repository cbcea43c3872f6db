"""How far below its best content IoU a kept model may be: every validated model of a run,
scored on the whole test image, and the model each tolerance of ``content_kept`` keeps.

Trains ``utom run TASK`` (bundled demo data, ``--budget``, ``--minutes``, one thread) for each
``--seeds`` value with a copy of the model at every validation (``validated_models``), or reads
finished folders made that way (``--runs``). Every copy then predicts the run's test images
under ``--views`` and is scored as the run's report scores them (PSNR and SSIM against the
reference). ``content_kept`` is replayed on the run's validation rows (no reference used) with
each of ``--tolerances``; the table gives every copy, the summary each tolerance's pick
averaged over the runs, next to the best content IoU's, the last model's and the peak.

    python benchmarks/iou_tolerance.py --task sr --seeds 2 3 --minutes 20 --out /tmp/tol
    python benchmarks/iou_tolerance.py --runs /tmp/tol/s2 /tmp/tol/s3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from resolution_choice import picks as replay
from validated_models import keeping_validated, validated

from utom_core import cli
from utom_core.evaluation.streamed import evaluate_prediction
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.plugins import get_registry
from utom_core.trained import load_model
from utom_core.training.validation import rows

TOLERANCES = (0.02, 0.01, 0.005, 0.002)
TASKS = ("sr", "isotropic", "denoise")
"""Tasks scored by PSNR against a reference of every bundled test image."""


def train(task: str, seed: int, budget: str, minutes: float | None, out: Path) -> None:
    """``utom run TASK`` on its demo data with a copy of the model at every validation."""
    length = ["--minutes", str(minutes)] if minutes else []
    with keeping_validated():
        cli.main(["run", task, "--seed", str(seed), "--budget", budget, *length,
                  "--threads", "1", "--out", str(out)])


def gains(out: Path, views: int, scratch: Path) -> dict[int, dict[str, float]]:
    """Each copy's PSNR and SSIM over its input's, on the run's test images (their mean);
    ``scratch``: a folder of this run's own, for the predictions."""
    registry = get_registry()
    record = json.loads((out / "metrics.json").read_text())
    evaluators = {k: v for k, v in registry.task_evaluators(registry.task(record["task"])).items()
                  if k in ("psnr", "ssim")}
    found: dict[int, dict[str, float]] = {}
    for iteration, model_file in validated(out / "run"):
        model = load_model(model_file, build_generator=registry.build_generator)
        predictor = Predictor(model, PredictOptions(views=views), formats=registry.formats)
        scores = []
        folder = scratch / str(iteration)
        for image in record["images"]:
            test, reference = Path(image["test"]), Path(image["reference"])
            predicted = predict_file(predictor, test, folder, show_progress=False)
            metrics = evaluate_prediction(evaluators, model, test, predicted, reference,
                                          folder, formats=registry.formats).metrics
            scores.append({key: metrics[key] - metrics[f"{key}_input"]
                           for key in ("psnr", "ssim")})
        found[iteration] = {key: float(np.mean([s[key] for s in scores]))
                            for key in ("psnr", "ssim")}
    return found


def picks(out: Path, tolerances: tuple[float, ...]) -> dict[str, int]:
    """Each rule's iteration: ``content_kept`` at each tolerance, the best content IoU, the
    last model (replayed on the run's validation rows by ``resolution_choice.picks``)."""
    logged = rows(out / "run")
    chosen = {f"content_kept {t:g}": replay(logged, ("content_kept",), t)["content_kept"]
              for t in tolerances}
    chosen["content_iou"] = replay(logged, ("content_iou",))["content_iou"]
    chosen["last"] = len(logged) - 1
    return {rule: int(logged[index]["iteration"]) for rule, index in chosen.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default="sr")
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--budget", default="demo", help="of the runs it trains")
    parser.add_argument("--minutes", type=float, help="of the runs it trains (else the budget's)")
    parser.add_argument("--out", type=Path, default=Path("iou-tolerance"))
    parser.add_argument("--runs", type=Path, nargs="*", default=[],
                        help="folders this script trained before")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--tolerances", type=float, nargs="*", default=list(TOLERANCES))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    runs = list(args.runs)
    for seed in args.seeds:
        runs.append(args.out / f"s{seed}")
        train(args.task, seed, args.budget, args.minutes, runs[-1])
    summary: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="utom-iou-tolerance-") as folder:
        for index, out in enumerate(runs):
            scored = gains(out, args.views, Path(folder) / str(index))
            logged = rows(out / "run")
            chosen = picks(out, tuple(args.tolerances))
            print(f"{out}\n\n| iteration | validation content IoU | validation PSNR gain | "
                  "test PSNR gain | test SSIM gain | kept by |\n|---|---|---|---|---|---|")
            for row in logged:
                iteration = int(row["iteration"])
                by = ", ".join(rule for rule, at in chosen.items() if at == iteration)
                print(f"| {iteration} | {row['content_iou']:.4f} | "
                      f"{row['psnr'] - row['psnr_input']:+.3f} | "
                      f"{scored[iteration]['psnr']:+.3f} | {scored[iteration]['ssim']:+.4f} | "
                      f"{by} |")
            print(flush=True)
            for rule, at in chosen.items():
                summary.setdefault(rule, []).append(scored[at]["psnr"])
            summary.setdefault("peak", []).append(max(s["psnr"] for s in scored.values()))
    print(f"| rule | test PSNR gain, each run | mean of {len(runs)} |\n|---|---|---|")
    for rule, values in summary.items():
        print(f"| {rule} | {', '.join(f'{v:+.3f}' for v in values)} | {np.mean(values):+.3f} |")


if __name__ == "__main__":
    main()
