"""Every method on the real colorectal core, with seeds: failures, colour and the authors' anchor.

Runs ``utom bench --tasks stain-he`` with ``UTOM_STAIN_HE_DATA`` set to the authors' core
(``AF_8.png``, ``AF_8_HE_ref.png``, ``AF_8_HE_pre.png``; ``../shared/data/utom-colorectal``
on the development machine) for every method and ``--seeds`` seeds, then reports per method:

- the **failure rate**: runs whose content IoU against the input falls below ``--cut``
  (inverted or distorted tissue — the paper's CycleGAN ±75% spread is such failures);
- the **colour distance to the adjacent real H&E section** of the held-out band, in tissue
  and in background (histogram earth mover's distance per channel in 8-bit levels, each
  image's own content mask: no registration needed);
- **SSIM against the authors' own UTOM prediction** (``AF_8_HE_pre.png``) and content IoU,
  as mean ± std over seeds, and seconds per iteration.

    python benchmarks/stain_he_real.py --data ../shared/data/utom-colorectal --out /tmp/real
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from utom_core.evaluation.streamed import evaluate_prediction
from utom_core.plugins import get_registry
from utom_core.trained import load_model
from utom_tasks.demo import bands
from utom_tasks.stain_he import DATA_ENV, REAL_GAP

METHODS = "utom,cyclegan,cut,fastcut,utom-cut"


def adjacent_he_band(data: Path, out: Path) -> Path:
    """The real H&E of the adjacent section over the held-out columns (what the bench's
    stain-he real data holds out), as a TIFF."""
    he = np.asarray(Image.open(data / "AF_8_HE_ref.png").convert("RGB"))
    test = bands(he.shape[1], test_fraction=0.2, gap=REAL_GAP)[1]
    path = out / "adjacent_he_test.tif"
    tifffile.imwrite(path, np.ascontiguousarray(he[:, test]), photometric="rgb")
    return path


def colour_to_adjacent(row: dict, reference: Path, scratch: Path) -> dict[str, float]:
    run_dir = Path(row["run_dir"])
    record = json.loads((run_dir / "metrics.json").read_text())["images"][0]
    registry = get_registry()
    predictor = load_model(run_dir / "run", build_generator=registry.build_generator)
    evaluation = evaluate_prediction(registry.task_evaluators(registry.task("stain-he")),
                                     predictor, Path(record["test"]),
                                     Path(record["prediction"]), reference, scratch,
                                     formats=registry.formats)
    return {k: v for k, v in evaluation.metrics.items() if k.startswith("color_emd")}


def summary(rows: list[dict], cut: float) -> list[str]:
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    head = (f"| method | seeds | failure rate (content IoU < {cut}) | content IoU | SSIM vs the "
            "authors' prediction | colour EMD to the adjacent H&E: tissue | background | "
            "s/iteration |")
    lines = [head, "|---" * 8 + "|"]

    def stat(values: list[float]) -> str:
        values = [v for v in values if v == v]  # a mask with no tissue has no tissue colour
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–"

    for method, runs in by_method.items():
        ok = [r for r in runs if r["status"] == "ok"]
        iou = [r["metrics"]["content_iou"] for r in ok]
        failed = sum(value < cut for value in iou)
        lines.append(
            f"| {method} | {len(ok)} | {failed}/{len(ok)} | {stat(iou)} | "
            f"{stat([r['metrics']['ssim'] for r in ok])} | "
            f"{stat([r['adjacent'].get('color_emd_tissue', np.nan) for r in ok])} | "
            f"{stat([r['adjacent'].get('color_emd_background', np.nan) for r in ok])} | "
            f"{stat([r['train_seconds'] / r['iterations'] for r in ok])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", default="bench")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cut", type=float, default=0.5,
                        help="Content IoU below which a run counts as failed.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{DATA_ENV: str(args.data.resolve())})
    subprocess.run([sys.executable, "-m", "utom_core", "bench", "--tasks", "stain-he",
                    "--methods", args.methods, "--seeds", str(args.seeds), "--budget",
                    args.budget, "--jobs", str(args.jobs), "--out", str(args.out)],
                   env=env, check=True)
    reference = adjacent_he_band(args.data, args.out)
    rows = json.loads((args.out / "bench.json").read_text())["runs"]
    for row in rows:
        if row["status"] == "ok":
            row["adjacent"] = colour_to_adjacent(row, reference, args.out / "scratch")
    lines = [f"# Real stain-he, budget {args.budget}, {args.seeds} seeds", "", *summary(
        rows, args.cut), ""]
    (args.out / "real_stain_he.md").write_text("\n".join(lines))
    (args.out / "real_stain_he.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
