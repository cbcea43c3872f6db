"""What do test-time views (``utom predict --views N``) buy, and what do they cost?

Re-predicts the test images of a finished ``utom run`` folder with 1, 2, 4 and 8 views through
the one ``Predictor``, evaluates each with the task's evaluators (PSNR/SSIM against the
reference where there is one, content IoU) and times the prediction. With ``--png`` it also
saves a 100 % crop of the first test image: input | 1 view | 8 views | reference.

    python benchmarks/views.py /tmp/v/denoise                  # a `utom run denoise` folder
    python benchmarks/views.py /tmp/v/he --png docs/images/views-stain-he.png --crop 300,300,256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from utom_core.evaluation.streamed import evaluate_prediction
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.records import RunRecord
from utom_core.trained import load_model


def _display(raw: np.ndarray) -> np.ndarray:
    """(C, H, W) as 8-bit RGB or grey, stretched by the 0.5/99.5 percentiles of each image
    (8-bit inputs are shown as they are)."""
    image = raw.astype(np.float32)
    if raw.dtype != np.uint8:
        low, high = np.percentile(image, (0.5, 99.5))
        image = (image - low) / max(high - low, 1e-6) * 255
    image = image.clip(0, 255).astype(np.uint8)
    return np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]


def panel(images: list[np.ndarray], crop: tuple[int, int, int], path: Path) -> None:
    """The crop of each image side by side at 100 %, 4-px white gaps."""
    y, x, size = crop
    tiles = [_display(image[:, y:y + size, x:x + size]) for image in images]
    gap = np.full((3, tiles[0].shape[1], 4), 255, np.uint8)
    row = np.concatenate([part for t in tiles for part in (t, gap)][:-1], axis=2)
    Image.fromarray(row.transpose(1, 2, 0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `utom run` output folder")
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--crop", default="0,0,256", help="ROW,COLUMN,SIZE of the PNG crop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = RunRecord.read(args.run / "metrics.json")
    if record is None:
        raise SystemExit(f"{args.run}: no metrics.json (not a finished `utom run` folder)")
    registry = get_registry()
    resolved = registry.resolve(registry.task(record.task), record.config)
    model = load_model(args.run / "run", build_generator=registry.build_generator)
    print(f"{args.run}: task {record.task}, {record.iterations} iterations; "
          f"{len(record.images)} test image(s)")
    shown: dict[int, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="utom-views-") as scratch:
        for count in args.views:
            predictor = Predictor(model, PredictOptions(views=count), formats=registry.formats)
            seconds, rows = 0.0, []
            for i, image in enumerate(record.images):
                out = Path(scratch) / f"{count}-{i}"
                start = time.perf_counter()
                prediction = predict_file(predictor, Path(image.test), out, show_progress=False)
                seconds += time.perf_counter() - start
                reference = Path(image.reference) if image.reference else None
                rows.append(evaluate_prediction(resolved.evaluators, model, Path(image.test),
                                                prediction, reference, out / "previews",
                                                formats=registry.formats).metrics)
                if i == 0:
                    shown[count] = read_image(prediction)
            means = {k: np.mean([r[k] for r in rows if k in r]) for k in sorted(rows[0])}
            scores = "  ".join(f"{k} {v:.4g}" for k, v in means.items())
            print(f"views {count}: {seconds:6.1f} s  {scores}", flush=True)
    if args.png is not None and 1 in shown and 8 in shown:
        first = record.images[0]
        images = [read_image(Path(first.test)), shown[1], shown[8]]
        images += [read_image(Path(first.reference))] if first.reference else []
        panel(images, tuple(int(v) for v in args.crop.split(",")), args.png)  # type: ignore[arg-type]
        print(f"crop (input | 1 view | 8 views{' | reference' if first.reference else ''}) "
              f"→ {args.png}")


if __name__ == "__main__":
    main()
