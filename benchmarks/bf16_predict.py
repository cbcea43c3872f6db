"""bf16 prediction against fp32: speed (MP/s) and the difference in the output's own units.

Each test image of each finished ``utom run`` folder is predicted through the one
``Predictor`` with ``PredictOptions(amp=True)`` (bf16 where the CPU/GPU computes it natively)
and ``amp=False`` (fp32), under 1 and 8 views, the variants alternating in rounds on one
thread. The difference between bf16 and fp32 is given as PSNR (peak: the integer dtype's
range, else the fp32 output's), max |difference| and its 99.9th percentile; as a scale for
"noise", the same figures between 1 and 8 views of fp32 are printed beside them.

    utom run denoise --budget smoke --out /tmp/hd/dn      # any finished run folders
    python benchmarks/bf16_predict.py /tmp/hd/dn /tmp/hd/he [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from utom_core.device import native_bf16
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.records import RunRecord
from utom_core.trained import load_model

VIEWS = (1, 8)


def difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """PSNR (dB; peak = an integer dtype's range, else b's), max and 99.9th percentile of
    |a - b| in the outputs' units."""
    delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if np.issubdtype(a.dtype, np.integer):
        peak = float(np.iinfo(a.dtype).max - np.iinfo(a.dtype).min)
    else:
        peak = float(b.max() - b.min())
    mse = float(np.mean(delta**2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
    return psnr, float(delta.max()), float(np.percentile(delta, 99.9))


def show(figures: tuple[float, float, float]) -> str:
    return f"PSNR {figures[0]:6.1f} dB, max {figures[1]:9.3f}, 99.9 % {figures[2]:9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished `utom run` folders")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = get_registry()
    print(f"threads 1; CPU computes bf16 natively: {native_bf16(torch.device('cpu'))}")
    ratios = []
    for run in args.runs:
        record = RunRecord.read(run / "metrics.json")
        if record is None:
            raise SystemExit(f"{run}: no metrics.json (not a finished `utom run` folder)")
        model = load_model(run / "run", build_generator=registry.build_generator)
        variants = {(views, amp): Predictor(model, PredictOptions(views=views, amp=amp),
                                            formats=registry.formats)
                    for views in VIEWS for amp in (True, False)}
        for i, image in enumerate(record.images):
            test = Path(image.test)
            seconds: dict[tuple[int, bool], list[float]] = {key: [] for key in variants}
            outputs: dict[tuple[int, bool], np.ndarray] = {}
            with tempfile.TemporaryDirectory(prefix="utom-bf16-") as scratch:
                for round_ in range(args.rounds + 1):  # round 0: warm-up
                    for (views, amp), predictor in variants.items():
                        out = Path(scratch) / f"{round_}-{views}-{amp}"
                        start = time.perf_counter()
                        written = predict_file(predictor, test, out, show_progress=False)
                        if round_:
                            seconds[views, amp].append(time.perf_counter() - start)
                        outputs[views, amp] = read_image(written, formats=registry.formats)
            source = read_image(test, formats=registry.formats)
            megapixels = float(np.prod(source.shape[1:])) / 1e6
            print(f"{run.name} [{record.task}] image {i}: {test.name}, "
                  f"{'x'.join(map(str, source.shape))}, output {outputs[1, False].dtype}")
            for views in VIEWS:
                rate = {amp: megapixels / float(np.median(seconds[views, amp]))
                        for amp in (True, False)}
                ratios.append(rate[True] / rate[False])
                print(f"  views {views}: bf16 {rate[True]:7.3f} MP/s, fp32 {rate[False]:7.3f} "
                      f"MP/s, ratio {rate[True] / rate[False]:.2f}")
                bf16 = difference(outputs[views, True], outputs[views, False])
                print(f"    bf16 vs fp32       {show(bf16)}")
            noise = difference(outputs[1, False], outputs[8, False])
            print(f"    1 vs 8 views, fp32 {show(noise)}")
            worst = max(difference(outputs[v, True], outputs[v, False])[1] for v in VIEWS)
            below = "below" if worst < noise[1] else "NOT below"
            print(f"    bf16's max difference is {below} the views' ({worst:.3f} vs "
                  f"{noise[1]:.3f})")
    print(f"speed-up bf16 / fp32: median {np.median(ratios):.2f}, min {min(ratios):.2f}")


if __name__ == "__main__":
    main()
