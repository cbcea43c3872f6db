"""target_colour: the Lab distance of a virtual stain to the target domain's own images, no
reference needed; it must rank a colour-shifted stain below a faithful one."""

from __future__ import annotations

import numpy as np
import tifffile
from helpers import blobs

from utom_core.data.images import DomainImages
from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.evaluation.base import Sample
from utom_core.evaluation.target_colour import TargetColour

HE = Domain(name="he", channels=3, dtype=PixelType.uint8, background=Polarity.bright,
            threshold=220.0)
NORM = Normalisation(low=[0.0] * 3, high=[255.0] * 3, dtype=PixelType.uint8)


def stain(rng: np.random.Generator, tint: tuple[float, float, float]) -> np.ndarray:
    """(Y, X, 3) uint8: purple-pink tissue blobs, tinted, on a white background."""
    tissue = blobs(rng, 128)[..., None]
    colour = np.array([170.0, 80.0, 160.0]) + np.array(tint)
    return (245 - tissue * (245 - colour)).clip(0, 255).astype(np.uint8)


def evaluator(tmp_path, image: np.ndarray) -> TargetColour:
    path = tmp_path / "b.tif"
    tifffile.imwrite(path, image, photometric="rgb")
    images = DomainImages([path], HE, ("z",))
    try:
        return TargetColour.of_images(images, NORM, HE.saliency(NORM, 220.0))
    finally:
        images.close()


def scored(target: TargetColour, image: np.ndarray) -> dict[str, float]:
    unit = NORM.apply(np.moveaxis(image, -1, 0))
    return target.evaluate(Sample(prediction=unit, output_saliency=HE.saliency(NORM, 220.0),
                                  output_normalisation=NORM))


def test_a_faithful_stain_scores_closer_than_a_tinted_one(tmp_path):
    rng = np.random.default_rng(3)
    target = evaluator(tmp_path, stain(rng, (0, 0, 0)))
    faithful = scored(target, stain(rng, (0, 0, 0)))["target_colour"]  # other tissue, same stain
    tinted = scored(target, stain(rng, (-40, 30, -40)))["target_colour"]  # a green cast
    assert 0 <= faithful < 1.5 < tinted


def test_the_target_itself_scores_zero_and_grey_scores_nothing(tmp_path):
    image = stain(np.random.default_rng(4), (0, 0, 0))
    target = evaluator(tmp_path, image)
    assert scored(target, image)["target_colour"] < 0.11  # one histogram bin, LAB_STEP
    grey = Sample(prediction=np.zeros((1, 8, 8), np.float32), output_normalisation=NORM,
                  output_saliency=HE.saliency(NORM, 220.0))
    assert target.evaluate(grey) == {}
