"""bf16 against fp32 training: validation curves at equal iterations, and the final metrics.

Reads the validation log (``run/val.jsonl``) and ``metrics.json`` of finished ``utom run``
folders trained alike but for ``--set amp=false``, labelled ``LABEL=FOLDER``, and prints the
final metrics per folder, the mean per label, and the spread over seeds; ``--png`` draws the
curves (one panel per metric, one line per folder).

    python benchmarks/precision_curves.py bf16=/tmp/he-bf16-s1 fp32=/tmp/he-fp32-s1 \\
        bf16=/tmp/he-bf16-s2 fp32=/tmp/he-fp32-s2 --png docs/images/bf16-curves-stain-he.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from utom_core.evaluation.figures.curves import curve_plot
from utom_core.records import RunRecord
from utom_core.training import validation

SHOWN = ("content_iou", "ssim", "psnr", "delta_e_tissue", "lab_emd_tissue", "periodic_artefact")


def curves(folder: Path, metrics: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    rows = validation.rows(folder / "run")
    return {name: [(row["iteration"], row[name]) for row in rows if name in row]
            for name in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FOLDER of a finished `utom run`")
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    runs = [(label, Path(folder)) for label, folder in (r.split("=", 1) for r in args.runs)]
    finals: dict[str, list[dict[str, float]]] = {}
    print("| run | " + " | ".join(SHOWN) + " | train s |")
    print("|---" * (len(SHOWN) + 2) + "|")
    for label, folder in runs:
        record = RunRecord.read(folder / "metrics.json")
        if record is None:
            raise SystemExit(f"{folder}: no readable metrics.json")
        finals.setdefault(label, []).append(record.metrics)
        cells = [f"{record.metrics[k]:.3f}" if k in record.metrics else "–" for k in SHOWN]
        print(f"| {label} {folder.name} | " + " | ".join(cells) +
              f" | {record.train_seconds:.0f} |")
    for label, rows in finals.items():
        cells = []
        for key in SHOWN:
            values = [row[key] for row in rows if key in row]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–")
        print(f"| **{label}**, mean ± std over {len(rows)} | " + " | ".join(cells) + " | |")
    if args.png is not None:
        metrics = ("content_iou", "ssim", "psnr")
        panels: dict[str, dict[str, list[tuple[float, float]]]] = {m: {} for m in metrics}
        for label, folder in runs:
            for name, points in curves(folder, metrics).items():
                if points:
                    panels[name][f"{label} {folder.name}"] = points
        curve_plot(args.png, "validation at equal iterations: bf16 and fp32",
                   {name: series for name, series in panels.items() if series})


if __name__ == "__main__":
    main()
