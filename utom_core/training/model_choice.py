"""Which validated model ``model_best.pt`` keeps: the best score, or a gain among safe models.

``content_iou``, ``psnr``, ``ssim``: the highest score so far. Content IoU alone peaks early,
on a model that has barely left its input, while a restoration's gain keeps growing; but a
model can buy a gain by moving content (a GAN inventing detail). So the tolerant rules keep a
model among validations whose content IoU is within a tolerance (``tolerance_of``) of the best
content IoU seen so far: ``content_kept`` the latest of them (training's gain, unless it cost
content; once a validation since the kept model has fallen below the tolerance, a later
model must come back at least as close as the kept one: a GAN that moved the content lost
its gain on the way),
``resolution`` the finest and ``anisotropy`` the closest to 1 among those that keep
their lateral resolution (``evaluation.resolution``), ``target_colour`` the colours closest
to the target domain's images (``evaluation.target_colour``).
It is decided as the run goes: a validation that raises the best IoU can make the kept model
ineligible, and then it (eligible by construction) replaces it. The kept model's record says
the rule and its figures; a resumed run reads it back, and the best IoU and any drift since
the kept model from ``val.jsonl``.
"""

from __future__ import annotations

import math
from typing import Any

from utom_core.evaluation.guide import from_ideal, guide
from utom_core.evaluation.resolution import lateral_kept
from utom_core.records import KEEPING_RULES

IOU_TOLERANCE = 0.005
"""How far below the best content IoU seen a model may be and still be kept for its gain. A
GAN that starts to move content loses its gain with it: along 20-minute sr runs content IoU,
within 0.004 of its best at the PSNR's peak, fell to 0.96–0.98 as the PSNR fell. Scored model
by model on the test image (three runs), 0.005 kept +0.26, +0.20 and +0.22 dB over the input
(peaks +0.26, +0.22, +0.22) where 0.02 kept −0.31, +0.12 and +0.14; 0.002 left a 5-minute
run's last gain (+0.19 against +0.31 dB), whose IoU still drifted by 0.004
(docs/results/model-choice.md)."""
COLOUR_TOLERANCE = 0.01
"""``target_colour``'s tolerance: across a stain-he run, later models come closer to the
target's colours and keep less content. On three seeds of the real core, scored on an unseen
core against the best-IoU pick, 0.02 cost 0.050 content IoU for the colour that 0.01 reached
at a cost of 0.011 (docs/results/model-choice.md)."""

def _lateral_kept(metrics: dict[str, float]) -> bool | None:
    """Whether the lateral resolution was kept (``evaluation.resolution.lateral_kept``; None
    where either was not measured: a crop that resolves nothing laterally)."""
    lateral, floor = metrics.get("lateral_resolution"), metrics.get("lateral_resolution_input")
    return None if lateral is None or floor is None else lateral_kept(lateral, floor)


def tolerance_of(metric: str) -> float:
    """How far below the best content IoU a model kept by ``metric``'s rule may be."""
    return COLOUR_TOLERANCE if metric == "target_colour" else IOU_TOLERANCE


def shortfall(metric: str, value: float | None) -> float:
    """How far a gain measure is from ideal (lower is better; inf where it was not measured,
    or where a ratio that should be near 1 is not positive)."""
    better = guide(metric).better
    if value is None or not math.isfinite(value) or (value <= 0 and better == "one"):
        return math.inf
    return from_ideal(better, value)


class ModelChoice:
    """Decides, validation by validation, whether the new model replaces the kept one."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.kept: dict[str, Any] | None = None
        """The kept model's record (what ``model_best.pt`` says of it)."""
        self.best_iou = -math.inf
        self.tolerance = tolerance_of(metric)
        self.drifted = False
        """Whether a validation since the kept model fell below the floor (``content_kept``
        then keeps a later model only if its content IoU is at least the kept one's)."""

    def offer(self, iteration: int, metrics: dict[str, float]) -> dict[str, Any] | None:
        """The record to save the new model with, or None where the kept one stays."""
        if self.metric not in KEEPING_RULES:
            score = metrics[self.metric]
            if self.kept is not None and not score > self.kept["score"]:
                return None
            self.kept = {"iteration": iteration, "metric": self.metric, "score": score}
            return self.kept
        iou = metrics["content_iou"]
        self.best_iou = max(self.best_iou, iou)
        if iou < self.floor():
            self.drifted = self.drifted or self.kept is not None
            return None
        if not self._better(iou, metrics):
            return None
        self.drifted = False
        score = iou if self.metric == "content_kept" else metrics.get(self.metric, math.nan)
        self.kept = {"iteration": iteration, "metric": self.metric, "score": score,
                     "content_iou": iou, "best_content_iou": self.best_iou,
                     "tolerance": self.tolerance}
        if self.metric == "anisotropy":
            self.kept["lateral_kept"] = _lateral_kept(metrics)
        return self.kept

    def floor(self) -> float:
        """The lowest content IoU a model may keep and be chosen for its gain."""
        return self.best_iou - self.tolerance

    def _better(self, iou: float, metrics: dict[str, float]) -> bool:
        kept = self.kept
        if kept is None or kept["content_iou"] < self.floor():
            return True
        if self.metric == "content_kept":  # the latest; after a drift, one that came back
            return not self.drifted or iou >= kept["content_iou"]  # at least as close
        # the kept model's shortfall, from its record (the same after --resume)
        kept_shortfall = (math.inf if kept.get("lateral_kept") is False
                          else shortfall(self.metric, kept["score"]))
        return (self._shortfall(metrics), -iou) < (kept_shortfall, -kept["content_iou"])

    def _shortfall(self, metrics: dict[str, float]) -> float:
        """The gain measure's distance from ideal; inf where ``anisotropy`` came closer to 1
        by a lateral resolution coarser than the input's (``_lateral_kept``)."""
        if self.metric == "anisotropy" and _lateral_kept(metrics) is False:
            return math.inf
        return shortfall(self.metric, metrics.get(self.metric))

    def resume(self, record: dict[str, Any] | None, rows: list[dict[str, float]]) -> None:
        """Continue from the kept model's record and the logged validations' best IoU (a kill
        may have come after a validation and before the checkpoint the run resumes from)."""
        if record is not None and record.get("metric") == self.metric:
            self.kept = record
        ious = [row["content_iou"] for row in rows if "content_iou" in row]
        recorded = [] if self.kept is None else [self.kept.get("best_content_iou", -math.inf)]
        self.best_iou = max([self.best_iou, *ious, *recorded])
        best, since = -math.inf, -math.inf if self.kept is None else self.kept["iteration"]
        for row in (row for row in rows if "content_iou" in row):
            best = max(best, row["content_iou"])
            if self.kept is not None and row["iteration"] > since:
                self.drifted = self.drifted or row["content_iou"] < best - self.tolerance
