"""Ways to build the fidelity map, compared offline: smoothing, scale-aware terms, combinations.

For each finished ``utom run`` folder (as ``fidelity_auc.py`` takes them) the raw quantities
are predicted once through the one prediction path (views' spread, masks, F(G(x)), the cycle
residual of 2 and of 8 views) and every variant is built from them with scipy on the whole
image, then scored with ``fidelity_auc``'s ROC AUC for the worst 10 % error pixels (all
pixels, within content; the mismatch case's puncta too). Whole-image smoothing stands in for
utom's per-tile smoothing (the same away from tile edges); ``fidelity_auc.py`` scores the map
utom writes. Prints, per variant, the mean AUC over the cases and how many beat the baseline.

    OMP_NUM_THREADS=1 python benchmarks/fidelity_variants.py /tmp/fid/denoise /tmp/fid/sr ...
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from fidelity_auc import STRUCTURE, WORST, auc, term_map
from scipy.ndimage import gaussian_filter, gaussian_gradient_magnitude, uniform_filter
from scipy.stats import rankdata

from utom_core.inference.fidelity import CYCLE_FULL, SPREAD_FULL, FidelityTerms
from utom_core.inference.views import dihedral
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.run_folders import RUN_SUBDIR
from utom_core.trained import TrainedModel, load_model


@dataclass(frozen=True)
class Raw:
    """One raw, unclipped quantity as the map: "spread", "masks", "back<c>" (channel c of
    F(G(x))) or "cycle<n>" (the cycle residual of n views, averaged)."""

    model: TrainedModel
    terms: FidelityTerms
    what: str

    def __call__(self, x: torch.Tensor, mean: torch.Tensor, square: torch.Tensor
                 ) -> torch.Tensor:
        reverse = self.terms.reverse
        if self.what == "spread":
            return (square - mean**2).clamp(min=0).sqrt().mean(dim=1, keepdim=True)
        if self.what == "masks":
            return self.terms.terms(x, mean, square)["masks"]
        assert reverse is not None
        if self.what.startswith("back"):
            c = int(self.what[4:])
            return reverse(mean.to(x.dtype))[:, c:c + 1].double()
        total = torch.zeros((), dtype=torch.float64)
        for view in dihedral(int(self.what[5:])):
            seen = view.apply(x)
            residual = (reverse(self.model.generator(seen)) - seen).abs().mean(1, keepdim=True)
            total = total + view.undo(residual).double()
        return total / int(self.what[5:])


def _rank(a: np.ndarray) -> np.ndarray:
    return (rankdata(a.ravel()) / a.size).reshape(a.shape)


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(a, sigma) if sigma else a


def variants(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every variant scored, from the raw quantities of one image."""
    x = raw["x"]
    views, masks = np.clip(raw["spread"] / SPREAD_FULL, 0, 1), raw["masks"]
    residual = raw["back"] - x
    cycle_raw = np.abs(residual).mean(0)
    cycle = np.clip(cycle_raw / CYCLE_FULL, 0, 1)
    grad = np.mean([gaussian_gradient_magnitude(r, 1.0) for r in residual], axis=0)
    gradient = np.clip(grad / 0.25, 0, 1)
    signal = uniform_filter(((x + 1) / 2).mean(0), 7)
    contrast = np.sqrt(np.clip(uniform_filter(((x + 1) / 2).mean(0) ** 2, 7) - signal**2, 0, None))
    out = {"cycle/view 2": raw["cycle2"], "cycle/view 8": raw["cycle8"],
           "cycle / (local signal + 0.05)": cycle_raw / (signal + 0.05),
           "cycle / (local contrast + 0.05)": cycle_raw / (contrast + 0.05),
           "cycle × local signal": cycle_raw * signal,
           "views / (local signal + 0.05)": raw["spread"] / (signal + 0.05)}
    three = {"views": views, "masks": masks, "cycle": cycle}
    for sigma in (0, 1, 1.5, 2, 3, 4):
        s = {name: _smooth(term, sigma) for name, term in {**three, "gradient": gradient}.items()}
        for name, term in s.items():
            out[f"{name} σ{sigma}"] = term
        out[f"max(V,M,C) of smoothed σ{sigma}"] = np.max([s[n] for n in three], axis=0)
        out[f"max(V,M,C) σ{sigma}"] = _smooth(np.max(list(three.values()), axis=0), sigma)
        out[f"mean(V,M,C) σ{sigma}"] = np.mean([s[n] for n in three], axis=0)
        out[f"rank mean(V,M,C) σ{sigma}"] = np.mean([_rank(s[n]) for n in three], axis=0)
        out[f"mean(V,M) σ{sigma} (one-sided)"] = (s["views"] + s["masks"]) / 2
        out[f"max(V,M) σ{sigma} (one-sided)"] = np.maximum(s["views"], s["masks"])
        out[f"mean(V,M,C,G) σ{sigma}"] = np.mean(list(s.values()), axis=0)
        out[f"max(V,M,C,G) σ{sigma}"] = np.max(list(s.values()), axis=0)
        out[f"mean(M,C,G) σ{sigma}"] = (s["masks"] + s["cycle"] + s["gradient"]) / 3
        out[f"mean(C,G) σ{sigma}"] = (s["cycle"] + s["gradient"]) / 2
    out["intensity"] = x.mean(0)
    out["input gradient"] = gaussian_gradient_magnitude(x.mean(0), 1.0)
    return out


def collect(folder: Path) -> list[dict[str, np.ndarray]]:
    """The raw quantities of each test image with a reference of a two-sided run."""
    record = json.loads((folder / "metrics.json").read_text())
    model = load_model(folder / RUN_SUBDIR, build_generator=get_registry().build_generator,
                       reverse=True)
    terms, views, found = FidelityTerms.of(model), record.get("views") or 8, []
    for image in record["images"]:
        if not image.get("reference") or model.reverse is None:
            continue
        test = Path(image["test"])
        norm = model.target_norm
        error = np.abs(norm.apply(read_image(Path(image["prediction"])).astype(np.float64))
                       - norm.apply(read_image(Path(image["reference"])).astype(np.float64)))
        x = model.source_norm.apply(read_image(test).astype(np.float64))
        raw = {"x": x, "error": error.mean(0),
               "content": terms.source(torch.from_numpy(x[None]).float())[0, 0].numpy() > 0.5}
        names = ["spread", "masks", "cycle2", "cycle8", *(f"back{c}" for c in range(len(x)))]
        with tempfile.TemporaryDirectory() as work:
            for name in names:
                raw[name] = term_map(model, test, views, Raw(model, terms, name), Path(work))
        raw["back"] = np.stack([raw.pop(f"back{c}") for c in range(len(x))])
        if (test.parent / STRUCTURE).is_file():
            raw["structure"] = tifffile.imread(test.parent / STRUCTURE) > 0
        found.append(raw)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished two-sided `utom run`s")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    scores: dict[str, dict[str, list[float]]] = {"all": {}, "content": {}}
    for raw in (raw for folder in args.runs for raw in collect(folder)):
        content, error = raw["content"], raw["error"]
        targets = [("all", error > np.quantile(error, 1 - WORST), None),
                   ("content", error[content] > np.quantile(error[content], 1 - WORST), content)]
        if "structure" in raw:
            targets += [("all", raw["structure"], None),
                        ("content", raw["structure"][content], content)]
        for name, value in variants(raw).items():
            for kind, positive, where in targets:
                scored = value if where is None else value[where]
                scores[kind].setdefault(name, []).append(auc(scored, positive))
    for kind, table in scores.items():
        baseline = np.maximum(table["intensity"], table["input gradient"])
        print(f"\n{kind} pixels ({len(baseline)} cases; baseline mean {baseline.mean():.3f})\n")
        print("| variant | mean AUC | lowest | beats the baseline |\n|---|---|---|---|")
        for name, values in table.items():
            print(f"| {name} | {np.mean(values):.3f} | {np.min(values):.3f} | "
                  f"{int(np.sum(np.array(values) > baseline))}/{len(values)} |")


if __name__ == "__main__":
    main()
