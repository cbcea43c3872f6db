"""Does the fidelity map find the prediction's worst pixels? ROC AUC against model-free baselines.

For each finished ``utom run`` folder whose test images have references, the pixels whose error
against the reference is in the worst 10 % (|prediction − reference| per pixel, mean over
channels, in the target's normalised units) are the positives; each map's ROC AUC for finding
them is printed as a markdown table, one row per case:

- each term of ``inference.fidelity`` alone, unsmoothed (views, masks, cycle and gradient: the
  cycle residual and its gradient on the views' mean prediction, one pass of F; cycle/view:
  the residual of every view, averaged, F once per view), the terms' maximum and mean
  (unsmoothed), and the map utom writes (their mean, smoothed);
- the model-free baselines: the input's intensity and its local gradient magnitude (Gaussian,
  σ = 1 px), both in normalised units averaged over channels, and the better of the two.

0.5 is chance; 1 ranks every worst pixel first. The maps are predicted again here with the
model the run predicted with (its last, or ``model_best.pt``) and its views (``Predictor``
with one term at a time); ``--views N`` predicts the test image and its maps under N views
instead. ``--mismatch DIR`` writes a
case whose domains differ in content (A: meshwork with puncta, B: meshwork only) and prints
the ``utom run`` command that trains it.

    python benchmarks/fidelity_auc.py /tmp/fid/denoise /tmp/fid/stain-he --json auc.json
    python benchmarks/fidelity_auc.py --mismatch /tmp/fid/mismatch-data
    python benchmarks/fidelity_auc.py --time big.tif /tmp/fid/stain-he    # what the map costs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy.ndimage import gaussian_gradient_magnitude
from scipy.stats import rankdata

from utom_core.inference.fidelity import CYCLE_FULL, FidelityTerms, cycle_terms, fidelity_path
from utom_core.inference.files import predict_file
from utom_core.inference.predictor import PredictOptions, Predictor
from utom_core.inference.views import dihedral
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.run_folders import RUN_SUBDIR
from utom_core.trained import TrainedModel, chosen_model, load_model
from utom_tasks import denoise
from utom_tasks.demo import bands
from utom_tasks.simulate import poisson_gaussian, to_uint16
from utom_tasks.structures import PEAK, SHARP_PHOTONS, meshwork

STRUCTURE = "structure.tif"
"""Beside the mismatch case's test image: where its reference holds the class B lacks."""
WORST = 0.10
"""Share of the pixels, by error against the reference, that are the positives."""


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``score`` for ``positive`` (Mann–Whitney; ties count half)."""
    ranks = rankdata(score.ravel())
    found = positive.ravel()
    hits, misses = int(found.sum()), int(found.size - found.sum())
    return float((ranks[found].sum() - hits * (hits + 1) / 2) / (hits * misses))


@dataclass(frozen=True)
class Only:
    """One term of the fidelity map, as the map (``Predictor``'s ``terms``)."""

    terms: FidelityTerms
    name: str

    def __call__(self, x: torch.Tensor, mean: torch.Tensor, square: torch.Tensor
                 ) -> torch.Tensor:
        return self.terms.terms(x, mean, square)[self.name]


@dataclass(frozen=True)
class CycleOfViews:
    """The cycle residual of every view, undone and averaged: F and G once more per view (the
    views' frozen norm statistics of tiled planes are not used: whole tiles only)."""

    model: TrainedModel
    views: int

    def __call__(self, x: torch.Tensor, mean: torch.Tensor, square: torch.Tensor
                 ) -> torch.Tensor:
        assert self.model.reverse is not None
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for view in dihedral(self.views):
            seen = view.apply(x)
            residual = cycle_terms(self.model.reverse, seen, self.model.generator(seen))
            total = total + view.undo(residual["cycle"]).double()
        return total / self.views


def term_map(model: TrainedModel, test: Path, views: int, terms: object, work: Path) -> np.ndarray:
    """The (H, W) map of ``terms`` for ``test``, predicted through the one prediction path."""
    predictor = Predictor(model, PredictOptions(views=views, fidelity=True),
                          terms=terms)  # type: ignore[arg-type]  # a Fidelity callable
    out = predict_file(predictor, test, work / f"{len(list(work.iterdir()))}",
                       show_progress=False)
    return read_image(fidelity_path(out))[0].astype(np.float64)


def maps(model: TrainedModel, test: Path, views: int) -> tuple[dict[str, np.ndarray],
                                                                np.ndarray]:
    """Every map scored (the terms unsmoothed, their maximum and mean, the map utom writes,
    the baselines), and where the input holds content (its content map above 0.5)."""
    found: dict[str, np.ndarray] = {}
    terms = FidelityTerms.of(model)
    names = ["views", "masks"] + (["cycle", "gradient"] if model.reverse is not None else [])
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            found[name] = term_map(model, test, views, Only(terms, name), Path(work))
        if model.reverse is not None:
            found["cycle/view"] = term_map(model, test, views, CycleOfViews(model, views),
                                           Path(work))
        found["utom"] = term_map(model, test, views, terms, Path(work))
    stack = np.stack([found[name] for name in names])
    found["max"], found["mean"] = stack.max(axis=0), stack.mean(axis=0)
    normalised = model.source_norm.apply(read_image(test).astype(np.float64))
    image = normalised.mean(axis=0)
    found["intensity"] = image
    found["input gradient"] = gaussian_gradient_magnitude(image, 1.0)
    content = terms.source(torch.from_numpy(normalised[None]).float())[0, 0].numpy() > 0.5
    return found, content


def aucs(found: dict[str, np.ndarray], error: np.ndarray) -> dict[str, float]:
    """Each map's AUC for the worst ``WORST`` of ``error``'s pixels (for a boolean ``error``,
    its true pixels), and the best baseline."""
    positive = error if error.dtype == bool else error > np.quantile(error, 1 - WORST)
    scores = {name: auc(value, positive) for name, value in found.items()}
    scores["baseline"] = max(scores["intensity"], scores["input gradient"])
    return scores


def run_record(folder: Path) -> dict:
    """A finished run's metrics.json (which images, which model predicted them)."""
    return json.loads((folder / "metrics.json").read_text())


def predicting_model(folder: Path, record: dict, reverse: bool) -> TrainedModel:
    """The model the run (``record``: its metrics.json) predicted its tests with: its last,
    or ``model_best.pt``."""
    choice = (record.get("predicted_with") or {}).get("model", "last")
    return load_model(chosen_model(folder / RUN_SUBDIR, choice), reverse=reverse,
                      build_generator=get_registry().build_generator)


def predicted(model: TrainedModel, test: Path, views: int) -> np.ndarray:
    """The prediction of ``test`` under ``views`` (a run's own was written with its views)."""
    with tempfile.TemporaryDirectory(prefix="utom-fidelity-auc-") as work:
        out = predict_file(Predictor(model, PredictOptions(views=views)), test,
                           Path(work) / "p", show_progress=False)
        return read_image(out)


def score_case(folder: Path, views: int | None = None) -> list[dict]:
    """Per test image with a reference: each map's AUC, and the cycle residual's spread;
    ``views``: predict and map under this many views instead of the run's own."""
    record = run_record(folder)
    model = predicting_model(folder, record, reverse=True)
    rows = []
    for image in record["images"]:
        if not image.get("reference"):
            continue
        norm = model.target_norm
        written = (read_image(Path(image["prediction"])) if views is None
                   else predicted(model, Path(image["test"]), views))
        prediction = norm.apply(written.astype(np.float64))
        reference = norm.apply(read_image(Path(image["reference"])).astype(np.float64))
        error = np.abs(prediction - reference).mean(axis=0)
        found, content = maps(model, Path(image["test"]), views or record.get("views") or 8)
        inside = {name: value[content] for name, value in found.items()}
        cycle = found.get("cycle", np.zeros(1)) * CYCLE_FULL
        rows.append({"case": f"{record['task']} ({record['method']}) {Path(image['test']).name}",
                     "auc": aucs(found, error), "auc_content": aucs(inside, error[content]),
                     "content": float(content.mean()),
                     "cycle_percentiles": np.percentile(cycle, [50, 90, 99]).round(3).tolist(),
                     "cycle_clipped": float((cycle >= CYCLE_FULL).mean())})
        structure = Path(image["test"]).parent / STRUCTURE
        if structure.is_file():  # the mismatch case: can the map find the missing class?
            rows.append({**rows[-1], "case": rows[-1]["case"] + ": finding the puncta",
                         "auc": aucs(found, tifffile.imread(structure) > 0),
                         "auc_content": aucs(inside, tifffile.imread(structure)[content] > 0)})
    return rows


def table(rows: list[dict], key: str = "auc") -> str:
    names = list(rows[0][key])
    lines = ["| case | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['case']} | "
                     + " | ".join(f"{row[key].get(n, float('nan')):.3f}" for n in names)
                     + " |")
    means = [np.nanmean([row[key].get(n, np.nan) for row in rows]) for n in names]
    lines.append("| mean over cases | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


def write_mismatch(workdir: Path, seed: int = 0) -> list[str]:
    """A denoise case whose B lacks a structure class: A and the test band are meshwork with
    puncta (σ 1.5 px spots), B is meshwork only; the reference is the clean test band."""
    rng = np.random.default_rng(seed)
    clean = meshwork()
    spots = np.zeros(clean.shape)
    rows, cols = np.indices(clean.shape)
    for _ in range(clean.size // 600):
        y, x = rng.uniform(0, clean.shape[0]), rng.uniform(0, clean.shape[1])
        spots += np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * 1.5**2))
    dotted = clean + 0.8 * PEAK * np.clip(spots, 0, 1)
    cut_a, cut_test, cut_b = bands(clean.shape[0], test_fraction=0.25, gap=16)
    offset, peak = float(np.percentile(dotted, 1)), float(np.percentile(dotted, 99.9))
    workdir.mkdir(parents=True, exist_ok=True)
    files = {"a": to_uint16(denoise.degrade(dotted[cut_a], rng, offset, peak)),
             "test": to_uint16(denoise.degrade(dotted[cut_test], rng, offset, peak)),
             "reference": to_uint16(dotted[cut_test]),
             "b": to_uint16(poisson_gaussian(clean[cut_b], SHARP_PHOTONS, 0.0, rng, offset,
                                             peak))}
    for name, array in files.items():
        tifffile.imwrite(workdir / f"{name}.tif", array)
    tifffile.imwrite(workdir / STRUCTURE, (spots[cut_test] > 0.25).astype(np.uint8))
    return ["utom", "run", "denoise", *(arg for name in files
                                        for arg in (f"--{name}", str(workdir / f"{name}.tif")))]


def time_terms(folder: Path, image: Path) -> None:
    """Print the prediction time of ``image`` without a map, with the map of views and masks,
    and with the cycle term, at 8 and 1 views."""
    record = run_record(folder)
    for views in (8, 1):
        for fidelity, reverse in ((False, False), (True, False), (True, True)):
            model = predicting_model(folder, record, reverse)
            predictor = Predictor(model, PredictOptions(views=views, fidelity=fidelity))
            with tempfile.TemporaryDirectory() as work:
                start = time.perf_counter()
                predict_file(predictor, image, Path(work), show_progress=False)
            print(f"views {views}, map {fidelity}, cycle term {reverse}: "
                  f"{time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="finished `utom run` folders")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--views", type=int, default=None,
                        help="predict and map under this many views (default: each run's own)")
    parser.add_argument("--mismatch", type=Path, help="write the content-mismatch case here")
    parser.add_argument("--time", type=Path, help="time predicting this image with the first "
                        "run's model, with and without each part of the map")
    args = parser.parse_args()
    if args.time:
        time_terms(args.runs[0], args.time)
        return
    if args.mismatch:
        print(" ".join(write_mismatch(args.mismatch)))
    torch.set_grad_enabled(False)
    rows = [row for folder in args.runs for row in score_case(folder, args.views)]
    if rows:
        print(table(rows), "\n\nWithin content (the input's content map above 0.5; the "
              "worst 10 % of those pixels):\n")
        print(table(rows, "auc_content"))
        for row in rows:
            print(f"{row['case']}: cycle residual (normalised units) median, 90th, 99th "
                  f"percentile {row['cycle_percentiles']}, {row['cycle_clipped']:.1%} at "
                  f"CYCLE_FULL; content {row['content']:.1%} of the pixels")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
