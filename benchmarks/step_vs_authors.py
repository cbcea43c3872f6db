"""Training step against the authors': seconds per iteration of utom's step (defaults, amp on
and off, each upsampling, stain-he's notched transposed generators) and of the authors'
published UTOM step, one thread, one process.

The authors' model comes from ``models/`` of their repository (github.com/cabooster/UTOM),
imported at run time from ``--authors`` and never copied here: their CycleGANModel with their
option parser's defaults for the paper's networks (resnet_9blocks, ngf 64, basic 70x70
PatchGAN, instance norm, LSGAN, batch 1, their saliency loss at its start weight), fed random
tiles in [-1, 1]; its ``optimize_parameters()`` is timed, console prints included (they are
part of their step; their text goes to /dev/null). utom's step is the real Trainer of
benchmarks/train_speed.py, data sampling included. After a warm-up the variants alternate in
rounds, so a load change on the machine hits them all; the report is each variant's median.

    git -C /work/.mirror/cabooster+UTOM/repo archive HEAD | tar -x -C /tmp/authors-utom
    python benchmarks/step_vs_authors.py --authors /tmp/authors-utom [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from train_speed import make_trainer

from utom_core.device import native_bf16

UPSAMPLINGS = ("smooth", "resize", "transpose")


def authors_step(root: Path, tile: int, ngf: int) -> Callable[[], None]:
    """One training step of the authors' CycleGANModel on random tiles.

    Shims, all at run time: their ``data`` package (torchvision) and ``util.util`` (libtiff)
    are only imported by the option module, not used by the model, so stubs stand in; the
    options come from their own parser (no ``parse()``: it writes an options file and picks a
    GPU); ``gpu_ids`` is empty (CPU); ``data_size`` (set by their train.py to the data set's
    length) is given so the saliency weight 50·exp(-counter/data_size) is defined.
    """
    sys.path.insert(0, str(root))
    stub = types.ModuleType("data")
    stub.get_option_setter = lambda name: (lambda parser, is_train: parser)  # type: ignore[attr-defined]
    sys.modules.setdefault("data", stub)
    sys.modules.setdefault("util.util", types.ModuleType("util.util"))
    from models.cycle_gan_model import CycleGANModel  # type: ignore[import-not-found]
    from options.train_options import TrainOptions  # type: ignore[import-not-found]

    parser = TrainOptions().initialize(argparse.ArgumentParser())
    parser = CycleGANModel.modify_commandline_options(parser, True)
    opt = parser.parse_args(["--dataroot", str(root), "--netG", "resnet_9blocks", "--ngf",
                             str(ngf), "--input_nc", "1", "--output_nc", "1", "--crop_size",
                             str(tile), "--load_size", str(tile), "--gpu_ids", "-1"])
    opt.isTrain, opt.gpu_ids, opt.counter, opt.data_size = True, [], 0, 1000
    with contextlib.redirect_stdout(io.StringIO()):
        model = CycleGANModel(opt)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        tiles = [torch.rand(1, 1, tile, tile, generator=generator) * 2 - 1 for _ in range(2)]
        model.set_input({"A": tiles[0], "B": tiles[1], "A_paths": [], "B_paths": []})
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            model.optimize_parameters()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True,
                        help="a checkout of github.com/cabooster/UTOM")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="steps of each variant first")
    args = parser.parse_args()
    if not (args.authors / "models" / "cycle_gan_model.py").is_file():
        parser.error(f"--authors {args.authors}: no models/cycle_gan_model.py there")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        steps: dict[str, Callable[[], object]] = {
            "authors fp32": authors_step(args.authors, args.tile, args.ngf)}
        for upsampling in UPSAMPLINGS:
            for amp in (True, False):
                work = Path(tmp) / f"{upsampling}-{amp}"
                work.mkdir()
                trainer = make_trainer(work, args.tile, args.ngf, 9, False,
                                       amp=amp, upsampling=upsampling)
                steps[f"utom {upsampling}, amp={str(amp).lower()}"] = trainer.step
        work = Path(tmp) / "no-shift"
        work.mkdir()  # what the shift term costs the default step
        steps["utom smooth, amp=true, lambda_shift=0"] = make_trainer(
            work, args.tile, args.ngf, 9, False, amp=True, lambda_shift=0.0).step
        work = Path(tmp) / "notched"
        work.mkdir()  # stain-he's generators
        steps["utom transpose, notch 6, amp=true"] = make_trainer(
            work, args.tile, args.ngf, 9, False, amp=True, upsampling="transpose",
            lattice_notch=6.0).step
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    bf16 = native_bf16(torch.device("cpu"))
    print(f"threads {torch.get_num_threads()}; CPU computes bf16 natively: {bf16} "
          f"(amp=true {'is bf16' if bf16 else 'stays fp32'}); ResNet-9 ngf "
          f"{args.ngf}, {args.tile}x{args.tile}, 1 → 1; median of {args.rounds} alternating "
          "rounds")
    reference = float(np.median(times["authors fp32"]))
    for name, values in times.items():
        median = float(np.median(values))
        print(f"{name:38s} {median:7.3f} s/step  (min {min(values):.3f})  "
              f"{median / reference:.2f}x the authors'")


if __name__ == "__main__":
    main()
