"""The loss curves of a run (``log.jsonl``) as one PNG: a panel per term, A and B sides together.

A GAN's losses jump from iteration to iteration, so each curve shows means over at most
``BINS`` runs of consecutive iterations: the trend is what tells a run that learns (cycle and
saliency terms falling, discriminators neither winning nor losing) from one that collapsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from utom_core.evaluation.figures.curves import Points, curve_plot

BINS = 100
SIDES = {"a": "A", "b": "B", "ab": "A->B", "ba": "B->A"}
"""Key suffixes of a term's two sides (cycle_a, gan_ab, …), drawn in one panel (in ASCII:
Pillow's bitmap font has no arrows)."""
PANELS = {"gan": "adversarial (generators)",
          "disc": "discriminators (0.25: balanced; near 0: won)",
          "generator": "generator objective (total)", "l1": "L1 to the target (supervised)",
          "shift": "shift term (what a grid costs G)",
          "background": "background term (distance to the target's background colour)"}
NOT_LOSSES = ("iteration", "rho", "lr")


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a loss log; a line torn by a killed process is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "iteration" in row:
            rows.append(row)
    return rows


def loss_panels(rows: list[dict[str, float]], bins: int = BINS) -> dict[str, dict[str, Points]]:
    """{panel: {side: binned (iteration, mean loss) points}}; terms that stay zero (an unused
    identity term) are left out."""
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in NOT_LOSSES]
    iterations = np.array([row["iteration"] for row in rows], dtype=np.float64)
    edges = np.array_split(np.arange(len(rows)), min(bins, len(rows)))
    panels: dict[str, dict[str, Points]] = {}
    for key in keys:
        values = np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
        if not np.any(np.nan_to_num(values)):
            continue
        name, _, side = key.rpartition("_")
        panel, label = (name, SIDES[side]) if name and side in SIDES else (key, key)
        panels.setdefault(PANELS.get(panel, panel), {})[label] = [
            (float(iterations[part].mean()), float(np.nanmean(values[part])))
            for part in edges if len(part) and np.isfinite(values[part]).any()]
    return panels


def save_loss_curves(log: Path, path: Path) -> bool:
    """Draw ``log``'s curves into ``path``; False when there is nothing to draw."""
    rows = read_log(log) if Path(log).is_file() else []
    if not rows:
        return False
    curve_plot(path, f"loss terms (means over {min(BINS, len(rows))} spans of iterations; "
                     "x: iteration)", loss_panels(rows))
    return Path(path).is_file()
