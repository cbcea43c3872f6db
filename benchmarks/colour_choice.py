"""Which stain-he model to predict with: every validated model of a run, scored on an unseen core.

Trains ``utom run stain-he`` on the authors' real colorectal core (``UTOM_STAIN_HE_DATA``, demo
budget, one view, one thread) for each ``--seeds`` value, keeping a copy of the EMA model at
every validation (``run/validated/ITER.pt``; a wrapper of this script, not a utom option), or
reads finished folders made that way (``--runs``). Every kept model then predicts an unseen
core (``--unseen``: the authors' ``AF_12``) under ``--views`` and is scored as
``real_core.py`` scores: content IoU, SSIM against the authors' prediction, ΔE and Lab EMD
against the adjacent real H&E, the periodic artefact. The model-choice rules are replayed on
the run's validation rows (``val.jsonl``: the held-out band of ``AF_8``, no reference used):
``content_iou``, ``target_colour`` (the colours closest to the B images' among models within
the content-IoU tolerance) and the last model; a summary gives each rule's pick averaged over
the runs.

    python benchmarks/colour_choice.py --seeds 1 2 3 --out /tmp/cc --unseen /tmp/af12
    python benchmarks/colour_choice.py --runs /tmp/cc/s1 /tmp/cc/s2 --unseen /tmp/af12
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from real_core import score, unseen_files
from resolution_choice import picks
from validated_models import keeping_validated, validated

from utom_core import cli
from utom_core.evaluation.periodic import periodic_artefact
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.trained import load_model
from utom_core.training.validation import rows
from utom_tasks.stain_he import DATA_ENV

RULES = ("content_iou", "target_colour")
SCORES = ("content_iou", "ssim", "delta_e_tissue", "delta_e_background", "lab_emd_tissue",
          "periodic_artefact")
HEADER = ("| iteration | validation content IoU | target_colour | content IoU | SSIM vs "
          "authors | ΔE tissue | ΔE background | Lab EMD tissue | periodic | picked by |")


def train(seed: int, out: Path, budget: str, settings: list[str]) -> None:
    """``utom run stain-he`` with a copy of the model at every validation."""
    with keeping_validated():
        cli.main(["run", "stain-he", "--seed", str(seed), "--views", "1", "--budget", budget,
                  "--out", str(out), *(f"--set={pair}" for pair in settings)])


def scored(run: Path, unseen: Path, views: int, scratch: Path) -> list[dict[str, float]]:
    """Each kept model's scores on the unseen core, with its validation row."""
    registry = get_registry()
    core, authors, adjacent = unseen_files(unseen, scratch)
    logged = {int(row["iteration"]): row for row in rows(run / "run")}
    found = []
    for iteration, model_file in validated(run / "run"):
        model = load_model(model_file, build_generator=registry.build_generator)
        out = scratch / f"{run.name}-{iteration}"
        predicted = predict_file(Predictor(model, PredictOptions(views=views),
                                           formats=registry.formats), core, out / "p",
                                 show_progress=False)
        metrics = score(model, core, predicted, authors, adjacent, out)
        metrics["periodic_artefact"] = periodic_artefact(read_image(predicted))
        found.append({"iteration": iteration, "val_iou": logged[iteration]["content_iou"],
                      "target_colour": logged[iteration].get("target_colour", np.nan),
                      **{key: metrics[key] for key in SCORES}})
    return found


def table(run: Path, models: list[dict[str, float]]) -> tuple[str, dict[str, dict]]:
    """The run's table, and the scores of each rule's pick."""
    logged = rows(run / "run")
    kept = {rule: int(logged[index]["iteration"])
            for rule, index in picks(logged, RULES).items()}
    kept["last"] = int(logged[-1]["iteration"])
    lines = [f"{run}", "", HEADER, "|---" * 10 + "|"]
    for model in models:
        by = [rule for rule, iteration in kept.items() if iteration == model["iteration"]]
        cells = [f"{model['iteration']:.0f}", f"{model['val_iou']:.3f}",
                 f"{model['target_colour']:.2f}", *(f"{model[k]:.3f}" for k in SCORES[:2]),
                 *(f"{model[k]:.2f}" for k in SCORES[2:]), ", ".join(by)]
        lines.append("| " + " | ".join(cells) + " |")
    at = {model["iteration"]: model for model in models}
    return "\n".join(lines) + "\n", {rule: at[iteration] for rule, iteration in kept.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=Path("colour-choice"))
    parser.add_argument("--runs", type=Path, nargs="*", default=[],
                        help="folders this script trained before")
    parser.add_argument("--unseen", type=Path, required=True,
                        help="a folder with AF_N.png, AF_N_HE_pre.png and AF_N_HE_ref.png")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--budget", default="demo", help="of the runs it trains")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the runs it trains (utom run --set)")
    args = parser.parse_args()
    if args.seeds and not os.environ.get(DATA_ENV):
        raise SystemExit(f"set {DATA_ENV} to the colorectal data to train on the real core")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    runs = list(args.runs)
    for seed in args.seeds:
        runs.append(args.out / f"s{seed}")
        train(seed, runs[-1], args.budget, args.set)
    picked: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="utom-colour-choice-") as folder:
        for run in runs:
            text, kept = table(run, scored(run, args.unseen, args.views, Path(folder)))
            print(text, flush=True)
            for rule, model in kept.items():
                picked.setdefault(rule, []).append(model)
    print(f"| rule (mean of {len(runs)} runs) | " + " | ".join(SCORES) + " |")
    print("|---" * (len(SCORES) + 1) + "|")
    for rule, models in picked.items():
        means = [np.mean([model[key] for model in models]) for key in SCORES]
        print(f"| {rule} | " + " | ".join(f"{value:.3f}" for value in means) + " |")


if __name__ == "__main__":
    main()
