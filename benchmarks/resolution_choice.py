"""Which model each model-choice rule keeps, against the test reference.

Runs ``utom run TASK`` (demo data, demo budget, seed 1, one thread; about 10 min for sr on
2 cores) or reads a finished run folder (``--run DIR``), and prints per validation row the
iteration, content IoU, the task's gain measure (sr: resolution in px, lower is finer;
isotropic: axial/lateral anisotropy, 1 = isotropic) and PSNR against the reference; then
which validation each rule of ``training.model_choice`` picks — the best content IoU; the
latest model within ``IOU_TOLERANCE`` of the best IoU so far (``content_kept``); the best gain
measure within it — with their PSNR. The rules are replayed on the logged rows, so one run
shows them all.

    python benchmarks/resolution_choice.py --task sr --out /tmp/sr-choice
    python benchmarks/resolution_choice.py --run /tmp/sr-choice
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from utom_core.training.model_choice import IOU_TOLERANCE, ModelChoice
from utom_core.training.validation import rows

MEASURES = {"sr": "resolution", "isotropic": "anisotropy"}


def picks(logged: list[dict[str, float]], rules: tuple[str, ...],
          tolerance: float | None = None) -> dict[str, int]:
    """Row index each rule keeps (replayed as the run went), with the tolerant rules'
    content-IoU ``tolerance`` where given (else each rule's own)."""
    choices, kept = {rule: ModelChoice(rule) for rule in rules}, dict.fromkeys(rules, 0)
    for choice in choices.values():
        choice.tolerance = choice.tolerance if tolerance is None else tolerance
    for index, row in enumerate(logged):
        for rule, choice in choices.items():
            if choice.offer(int(row["iteration"]), row) is not None:
                kept[rule] = index
    return kept


def table(run: Path, measure: str) -> str:
    logged = rows(run)
    if not logged:
        raise SystemExit(f"{run}: no val.jsonl rows")
    kept = picks(logged, ("content_iou", "content_kept", measure))
    lines = [f"| iteration | content IoU | {measure} | {measure} input | PSNR (dB) | "
             "PSNR input | picked by |", "|---|---|---|---|---|---|---|"]
    for index, row in enumerate(logged):
        by = [rule for rule, pick in kept.items() if pick == index]
        cells = [f"{row['iteration']:.0f}", f"{row['content_iou']:.4f}",
                 *(f"{row[key]:.3g}" if key in row else "–"
                   for key in (measure, f"{measure}_input")),
                 *(f"{row[key]:.2f}" if key in row else "–" for key in ("psnr", "psnr_input")),
                 ", ".join(by)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for rule, index in kept.items():
        row = logged[index]
        lines.append(f"{rule}: iteration {row['iteration']:.0f}, content IoU "
                     f"{row['content_iou']:.4f}, {measure} {row.get(measure, float('nan')):.3g}, "
                     f"PSNR {row.get('psnr', float('nan')):.2f} dB")
    lines.append(f"last validation: PSNR {logged[-1].get('psnr', float('nan')):.2f} dB "
                 f"(tolerant rules: content IoU within {IOU_TOLERANCE} of the best so far)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(MEASURES), default="sr")
    parser.add_argument("--run", type=Path, help="a finished `utom run` output or its run/")
    parser.add_argument("--out", type=Path, default=Path("resolution-choice"))
    parser.add_argument("--budget", default="demo")
    args = parser.parse_args()
    out = args.run
    if out is None:
        out = args.out
        subprocess.run(["utom", "run", args.task, "--budget", args.budget, "--seed", "1",
                        "--out", str(out), "--overwrite"], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    run = out / "run" if (out / "run").is_dir() else out
    record = run.parent / "metrics.json"  # a `utom run` output names its task
    task = json.loads(record.read_text())["task"] if record.is_file() else args.task
    print(f"{run} ({task})\n")
    print(table(run, MEASURES.get(task, MEASURES[args.task])))


if __name__ == "__main__":
    main()
