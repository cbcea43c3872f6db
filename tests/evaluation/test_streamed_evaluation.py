"""Streamed evaluation: a prediction evaluated strip by strip scores what it scores whole,
and never has to be read whole."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.evaluation import metrics, streamed
from utom_core.evaluation.colour import ColorFidelity
from utom_core.evaluation.lab import LabColour
from utom_core.io import open_image
from utom_core.task import Slicing
from utom_core.trained import TrainedModel


class _Identity:
    in_channels = out_channels = 3


def _predictor(channels_in: int, channels_out: int, smooth: float) -> TrainedModel:
    source = Domain(name="af", channels=channels_in, saliency_smooth=smooth)
    target = Domain(name="he", channels=channels_out, dtype=PixelType.uint8,
                    background=Polarity.bright)
    return TrainedModel(
        generator=None, source=source, target=target,  # type: ignore[arg-type]
        source_norm=Normalisation(low=(100.0,) * channels_in, high=(20000.0,) * channels_in,
                                  dtype=PixelType.uint16),
        target_norm=Normalisation(low=(0.0,) * channels_out, high=(255.0,) * channels_out,
                                  dtype=PixelType.uint8),
        source_threshold=6000.0, target_threshold=180.0, slicing=Slicing.xy, task="t",
        config=None)  # type: ignore[arg-type]


def _images(tmp_path, shape: tuple[int, ...], channels_out: int):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    blobs = (np.sin(yy / 6.0) * np.cos(xx / 9.0) > 0.2).astype(np.float32)
    planes = shape[0] if len(shape) == 3 else 1
    stack = np.stack([np.roll(blobs, 3 * z, axis=1) for z in range(planes)])
    raw = (500 + 15000 * stack + rng.normal(0, 800, stack.shape)).clip(0, 65535)
    tissue = 1 - stack[:, None]
    reference = (230 - 120 * tissue * np.array([0.3, 0.8, 0.4])[:, None, None]
                 + rng.normal(0, 6, (planes, 3, *shape[-2:]))).clip(0, 255)
    prediction = (reference + rng.normal(0, 12, reference.shape)).clip(0, 255)
    squeeze = (lambda a: a[0]) if len(shape) == 2 else (lambda a: a)
    paths = {}
    for name, data, dtype in (("input", raw, np.uint16), ("prediction", prediction, np.uint8),
                              ("reference", reference, np.uint8)):
        array = squeeze(data.astype(dtype))
        paths[name] = tmp_path / f"{name}.tif"
        if name == "input":
            tifffile.imwrite(paths[name], array, photometric="minisblack")
        else:  # channels last for an RGB (or Z, Y, X, RGB) TIFF
            tifffile.imwrite(paths[name], np.moveaxis(array, -3, -1), photometric="rgb")
    return paths


EVALUATORS = {evaluator.name: evaluator
              for evaluator in (*metrics.EVALUATORS, ColorFidelity(), LabColour())}
"""psnr, ssim, content, color and lab: what a task's evaluators resolve to."""


@pytest.mark.parametrize(("shape", "smooth"), [((70, 90), 0.0), ((70, 90), 1.5),
                                                ((3, 40, 50), 0.0)])
def test_streamed_metrics_equal_whole_image_metrics(tmp_path, monkeypatch, shape, smooth):
    paths = _images(tmp_path, shape, 3)
    predictor = _predictor(1, 3, smooth)
    args = (EVALUATORS, predictor, paths["input"], paths["prediction"], paths["reference"])
    whole = streamed.evaluate_prediction(*args, tmp_path / "whole")
    assert whole.notes == []
    monkeypatch.setattr(streamed, "WHOLE_VALUES", 0)
    monkeypatch.setattr(streamed, "STRIP_VALUES", 1)  # 16-row strips: several per plane
    strips = streamed.evaluate_prediction(*args, tmp_path / "strips")
    assert set(strips.metrics) == set(whole.metrics)
    assert {"psnr", "ssim", "content_iou_ref", "color_emd_tissue", "delta_e_tissue",
            "lab_emd_background", "periodic_artefact"} <= set(whole.metrics)
    for key, value in whole.metrics.items():
        assert strips.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert any("streamed" in note for note in strips.notes)
    assert (tmp_path / "strips" / "input_panel.png").exists()
    assert (tmp_path / "strips" / "input_profile.png").exists()


def test_a_streamed_evaluation_never_reads_the_whole_prediction(tmp_path, monkeypatch):
    paths = _images(tmp_path, (120, 64), 3)
    monkeypatch.setattr(streamed, "WHOLE_VALUES", 0)
    monkeypatch.setattr(streamed, "STRIP_VALUES", 1)
    monkeypatch.setattr(streamed, "PREVIEW_SIDE", 32)
    monkeypatch.setattr(streamed, "CROP", 16)  # the periodic artefact's crop
    largest = []

    def recording(path, formats=None):
        source = open_image(path, formats=formats)
        read = source.read

        def read_region(region):
            data = read(region)
            largest.append(data[0].size)
            return data

        source.read = read_region
        return source

    monkeypatch.setattr(streamed, "open_image", recording)
    monkeypatch.setattr(streamed, "read_image", lambda path, formats: pytest.fail("read whole"))
    streamed.evaluate_prediction(EVALUATORS, _predictor(1, 3, 0.0), paths["input"],
                                 paths["prediction"], paths["reference"], tmp_path / "x")
    assert largest and max(largest) <= (16 + 2 * 5) * 64  # one strip and its halo


def test_an_evaluator_that_needs_whole_images_is_skipped_with_a_note(tmp_path, monkeypatch):
    from utom_core.evaluation.base import Evaluator

    class WholeOnly(Evaluator):
        name = "whole-only"

        def evaluate(self, sample):
            return {"whole_only": 1.0}

    evaluators = {"psnr": EVALUATORS["psnr"], "whole-only": WholeOnly()}
    paths = _images(tmp_path, (40, 40), 3)
    args = (evaluators, _predictor(1, 3, 0.0), paths["input"], paths["prediction"],
            paths["reference"])
    assert streamed.evaluate_prediction(*args, tmp_path / "a").metrics["whole_only"] == 1.0
    monkeypatch.setattr(streamed, "WHOLE_VALUES", 0)
    result = streamed.evaluate_prediction(*args, tmp_path / "b")
    assert "whole_only" not in result.metrics and "psnr" in result.metrics
    assert any("whole-only" in note and "skipped" in note for note in result.notes)
