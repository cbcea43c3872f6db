"""How far a virtual stain's colours are from the target domain's own images: a colour measure
that needs no reference, so that the model choice can weigh colour.

The target domain's training images (unpaired: the colours the GAN is asked to make) are
sampled once, on a fixed lattice of windows; ``target_colour`` is the CIELAB earth mover's
distance (``evaluation.lab``) of a prediction's tissue to theirs and of its background to
theirs, each image's own content mask, averaged over the two. Tissue composition differs
between images, so a perfect stain does not score 0: the value ranks the models of one run,
which all predict the same tissue (docs/results/model-choice.md measures how well it ranks
them on an unseen core).
"""

from __future__ import annotations

import numpy as np

from utom_core.data.images import COLOUR_PIXELS, COLOUR_WINDOW, DomainImages
from utom_core.domain import Normalisation
from utom_core.evaluation.base import Evaluator, Sample
from utom_core.evaluation.lab import REGIONS, LabStats, srgb_to_lab, to_srgb8
from utom_core.evaluation.metrics import content_mask
from utom_core.saliency import SaliencyOperator


def region_stats(unit: np.ndarray, normalisation: Normalisation,
                 saliency: SaliencyOperator,
                 into: dict[str, LabStats] | None = None) -> dict[str, LabStats]:
    """Lab statistics of a (3, Y, X) image on the [-1, 1] scale, in tissue and background
    (its own content mask), added to ``into`` where given."""
    stats = into if into is not None else {key: LabStats() for key in REGIONS}
    lab = srgb_to_lab(to_srgb8(unit, normalisation))
    tissue = content_mask(unit, saliency)
    for key, mask in zip(REGIONS, (tissue, ~tissue), strict=True):
        stats[key].add(lab[:, mask])
    return stats


class TargetColour(Evaluator):
    """Lab distance of an RGB prediction's colours to the target domain's training images."""

    name = "target_colour"

    def __init__(self, target: dict[str, LabStats]) -> None:
        self.target = target

    @classmethod
    def of_images(cls, images: DomainImages, normalisation: Normalisation,
                  saliency: SaliencyOperator) -> TargetColour:
        """Sampled from every plane of ``images`` (the same windows on every call)."""
        stats = {key: LabStats() for key in REGIONS}
        for raw in images.lattice_windows(COLOUR_PIXELS, COLOUR_WINDOW):
            region_stats(normalisation.apply(raw), normalisation, saliency, stats)
        return cls(stats)

    def evaluate(self, sample: Sample) -> dict[str, float]:
        """``target_colour``: the mean of the tissue and background distances (only those
        regions both have); nothing for a prediction that is not RGB."""
        norm, saliency = sample.output_normalisation, sample.output_saliency
        if sample.prediction.shape[0] != 3 or norm is None or saliency is None:
            return {}
        mine = region_stats(sample.prediction, norm, saliency)
        distances = [mine[key].emd(self.target[key]) for key in REGIONS
                     if mine[key].count and self.target[key].count]
        return {"target_colour": float(np.mean(distances))} if distances else {}
