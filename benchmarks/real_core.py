"""Score finished ``utom run stain-he`` folders trained on the authors' real colorectal core.

Each run (trained with ``UTOM_STAIN_HE_DATA`` set: A = left AF band, B = right H&E band, test =
the middle AF band) predicts, through the one ``Predictor`` under each ``--views`` count:

- the held-out band, scored for content IoU against its input (the task's evaluator), SSIM
  against the authors' own prediction ``AF_8_HE_pre.png`` of the band, and colour in CIELAB
  (ΔE of the mean colours, Lab EMD) against the **adjacent real H&E** of the same band;
- the whole AF_8 core (1000 × 1000), whose grey prediction is scored for the periodic artefact
  (the narrow band gives a noisy spectrum).

``--unseen FOLDER`` scores a core the runs never saw instead, whole (the authors' ``AF_12``:
``AF_12.png``, ``AF_12_HE_pre.png``, ``AF_12_HE_ref.png`` from their repository's ``images/``);
``--model last best`` scores each run's last model and its best validation's.

A first row scores the authors' prediction the same way. With ``--png DIR``: per row a 100 %
crop of the whole core (input | prediction | authors' prediction) and the log power spectrum
of the whole-core grey prediction.

    python benchmarks/real_core.py /tmp/runs/utom-s0 /tmp/runs/cut-s0 --views 1 8 --png /tmp/png
    python benchmarks/real_core.py /tmp/runs/utom-s0 --unseen /tmp/af12 --model last best
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image
from stain_he_real import adjacent_he_band
from views import panel

from utom_core.evaluation.periodic import periodic_artefact
from utom_core.evaluation.streamed import evaluate_prediction
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.records import RunRecord
from utom_core.trained import TrainedModel, chosen_model, load_model
from utom_tasks.stain_he import DATA_ENV

AUTHORS = "AF_8_HE_pre.png"
COLUMNS = ("content_iou", "ssim", "delta_e_tissue", "delta_e_background", "lab_emd_tissue",
           "periodic_artefact")
HEADER = ("| run | views | content IoU | SSIM vs authors | ΔE tissue | ΔE background | "
          "Lab EMD tissue | periodic (whole core) | s / band | s / core |")


def _png_as_tiff(png: Path, out: Path) -> Path:
    """A PNG of the core as a TIFF (channels last), the form the test band is in."""
    with Image.open(png) as image:
        array = np.asarray(image if image.mode.startswith("I") else image.convert("RGB"))
    if array.dtype != np.uint8:
        array = array.astype(np.uint16)
    tifffile.imwrite(out, np.ascontiguousarray(array),
                     photometric="rgb" if array.ndim == 3 else "minisblack")
    return out


def _record(run: Path) -> RunRecord:
    record = RunRecord.read(run / "metrics.json")
    if record is None or record.task != "stain-he":
        raise SystemExit(f"{run}: not a finished `utom run stain-he` folder")
    return record


def score(model: TrainedModel, test: Path, prediction: Path, authors: Path, adjacent: Path,
          scratch: Path) -> dict[str, float]:
    """Content IoU and SSIM against the authors' prediction, Lab colour against the adjacent
    H&E, of the prediction of ``test``."""
    registry = get_registry()
    evaluators = registry.task_evaluators(registry.task("stain-he"))
    if not authors.is_file():
        raise SystemExit(f"{test}: no reference band (trained without {AUTHORS}?)")
    structure = evaluate_prediction({k: evaluators[k] for k in ("content", "ssim")}, model,
                                    test, prediction, authors, scratch / "s",
                                    formats=registry.formats).metrics
    colour = evaluate_prediction({"lab": evaluators["lab"]}, model, test, prediction, adjacent,
                                 scratch / "c", formats=registry.formats).metrics
    return {**structure, **colour}


def spectrum(image: np.ndarray, path: Path) -> None:
    """The log power spectrum of the grey image (Hann window, zero frequency in the centre)."""
    grey = image.astype(np.float64).mean(axis=0)
    window = np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1]))
    power = np.log10(np.abs(np.fft.fftshift(np.fft.fft2((grey - grey.mean()) * window)))**2
                     + 1e-12)
    low, high = np.percentile(power, (1, 99.99))
    scaled = ((power - low) / max(high - low, 1e-9)).clip(0, 1) * 255
    Image.fromarray(scaled.astype(np.uint8)).save(path)


def row(name: str, views: str, metrics: dict[str, float], seconds: tuple[str, str]) -> str:
    cells = [f"{metrics[k]:.3f}" if k in metrics else "–" for k in COLUMNS]
    return f"| {name} | {views} | {' | '.join(cells)} | {seconds[0]} | {seconds[1]} |"


def unseen_files(folder: Path, scratch: Path) -> tuple[Path, Path, Path]:
    """An unseen core's AF image, the authors' prediction and the adjacent real H&E, as TIFFs
    (``AF_N.png``, ``AF_N_HE_pre.png``, ``AF_N_HE_ref.png``; e.g. the authors' AF_12)."""
    found = sorted(p for p in folder.glob("AF_*.png") if "_HE_" not in p.name)
    if not found:
        raise SystemExit(f"{folder}: no AF_N.png with AF_N_HE_pre.png and AF_N_HE_ref.png")
    stem = found[0].stem
    return tuple(_png_as_tiff(folder / f"{stem}{suffix}.png", scratch / f"unseen{suffix}.tif")
                 for suffix in ("", "_HE_pre", "_HE_ref"))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="`utom run stain-he` folders")
    parser.add_argument("--views", type=int, nargs="+", default=[8])
    parser.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                        help=f"the folder of AF_8.png, AF_8_HE_ref.png and {AUTHORS} "
                             f"(default: ${DATA_ENV})")
    parser.add_argument("--unseen", type=Path, default=None,
                        help="score an unseen core instead, whole: a folder with AF_N.png, "
                             "AF_N_HE_pre.png and AF_N_HE_ref.png (the authors' AF_12)")
    parser.add_argument("--model", choices=("last", "best"), nargs="+", default=["last"],
                        help="which of each run's models predicts (utom predict --checkpoint)")
    parser.add_argument("--png", type=Path, default=None, help="folder for crops and spectra")
    parser.add_argument("--crop", default="380,380,256",
                        help="ROW,COLUMN,SIZE of the whole-core crop in the PNGs")
    args = parser.parse_args()
    if args.data is None or not (args.data / AUTHORS).is_file():
        raise SystemExit(f"give --data (or set {DATA_ENV}): a folder with AF_8.png, "
                         f"AF_8_HE_ref.png and {AUTHORS}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    crop = tuple(int(v) for v in args.crop.split(","))
    registry = get_registry()
    if args.png is not None:
        args.png.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="utom-real-core-") as folder:
        scratch = Path(folder)
        records = [(run, _record(run)) for run in args.runs]
        if args.unseen is not None:
            core, authors_file, adjacent = unseen_files(args.unseen, scratch)
            test: Path | None = core
        else:
            adjacent = adjacent_he_band(args.data, scratch)
            core = _png_as_tiff(args.data / "AF_8.png", scratch / "af_8.tif")
            authors_file = _png_as_tiff(args.data / AUTHORS, scratch / "authors.tif")
            test = None  # each run's own held-out band
        authors_core, core_input = read_image(authors_file), read_image(core)
        first = load_model(args.runs[0] / "run", build_generator=registry.build_generator)
        band_test = test or Path(records[0][1].images[0].test)
        band_authors = authors_file if test else Path(records[0][1].images[0].reference or "")
        authors = {**score(first, band_test, band_authors, band_authors, adjacent,
                           scratch / "authors"),
                   "periodic_artefact": periodic_artefact(authors_core)}
        lines = [HEADER, "|---" * 10 + "|", row("authors' prediction", "–", authors,
                                                ("–", "–"))]
        if args.png is not None:
            spectrum(authors_core, args.png / "authors_spectrum.png")
        print("\n".join(lines), flush=True)
        for run, record in records:
            for choice in args.model:
                model = load_model(chosen_model(run / "run", choice),
                                   build_generator=registry.build_generator)
                for views in args.views:
                    out = scratch / f"{len(lines)}"
                    predictor = Predictor(model, PredictOptions(views=views),
                                          formats=registry.formats)
                    own_test = test or Path(record.images[0].test)
                    own_authors = authors_file if test else Path(record.images[0].reference
                                                                 or "")
                    start = time.perf_counter()
                    band = predict_file(predictor, own_test, out / "band", show_progress=False)
                    band_s = time.perf_counter() - start
                    start = time.perf_counter()
                    whole_file = band if test else predict_file(predictor, core, out / "core",
                                                                show_progress=False)
                    whole = read_image(whole_file)
                    core_s = time.perf_counter() - start
                    metrics = {**score(model, own_test, band, own_authors, adjacent, out),
                               "periodic_artefact": periodic_artefact(whole)}
                    name = f"{run} ({choice})" if len(args.model) > 1 else str(run)
                    lines.append(row(name, str(views), metrics,
                                     (f"{band_s:.1f}", f"{core_s:.1f}")))
                    print(lines[-1], flush=True)
                    if args.png is not None:
                        both = f"_{choice}" if len(args.model) > 1 else ""
                        stem = args.png / f"{run.name}{both}_views{views}"
                        panel([core_input, whole, authors_core], crop,  # type: ignore[arg-type]
                              stem.with_name(stem.name + "_crop.png"))
                        spectrum(whole, stem.with_name(stem.name + "_spectrum.png"))


if __name__ == "__main__":
    main()
