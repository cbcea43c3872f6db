"""Does the EMA of generator weights narrow the swing of GAN snapshots?

Trains the denoise task on its demo data (simulated Poisson–Gaussian noise on real nuclei,
exact ground truth) and, every ``--every`` iterations, scores the raw generator and its EMA on
the held-out test slices (PSNR against the clean originals). Prints both series and their
spread over the second half of training.

    python benchmarks/ema_spread.py [--iterations 1500] [--every 50] [--budget demo]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from utom_core.config import Budget, build_config
from utom_core.evaluation.metrics import psnr
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.training.trainer import Trainer
from utom_tasks.denoise import TASK


def score(generator: torch.nn.Module, trainer: Trainer, tests: list[tuple[np.ndarray, np.ndarray]]
          ) -> float:
    """Mean PSNR of the generator's predictions of the test slices (whole-image inference)."""
    norm_a, norm_b = trainer.meta.normalisation_a, trainer.meta.normalisation_b
    values = []
    with torch.no_grad():
        for noisy, clean in tests:
            x = torch.from_numpy(norm_a.apply(noisy))[None]
            pad = [(-s) % 4 for s in x.shape[-2:]]
            y = generator(torch.nn.functional.pad(x, (0, pad[1], 0, pad[0]), mode="reflect"))
            y = y[..., : x.shape[-2], : x.shape[-1]][0].numpy()
            values.append(psnr(y, norm_b.apply(clean)))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--budget", default="demo", choices=[b.value for b in Budget])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = TASK.demo_data(Path(tmp) / "data", args.seed)
        cfg = build_config(*TASK.config_layers(Budget(args.budget)),
                           {"iterations": args.iterations, "seed": args.seed})
        run = get_registry().resolve(TASK, cfg)
        trainer = Trainer(TASK, cfg, Path(tmp) / "run", data.a, data.b, method=run.method,
                          build_generator=run.build_generator)
        pairs = zip(data.test, data.reference, strict=True)
        tests = [(read_image(test), read_image(reference)) for test, reference in pairs]
        raw, ema = [], []
        while trainer.iteration < args.iterations:
            trainer.step()
            if trainer.iteration % args.every == 0:
                trainer.g_ab.eval()
                raw.append(score(trainer.g_ab, trainer, tests))
                ema.append(score(trainer.ema_ab, trainer, tests))
                trainer.g_ab.train()
                print(f"iteration {trainer.iteration:5d}  raw {raw[-1]:6.2f} dB  "
                      f"EMA {ema[-1]:6.2f} dB", flush=True)
    half = len(raw) // 2
    for name, series in (("raw weights", raw[half:]), ("EMA weights", ema[half:])):
        print(f"{name}: second half mean {np.mean(series):.2f} dB, std {np.std(series):.2f} dB, "
              f"range {min(series):.2f}–{max(series):.2f} dB")


if __name__ == "__main__":
    main()
