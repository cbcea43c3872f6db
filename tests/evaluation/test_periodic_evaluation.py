"""Every prediction is scored for a periodic grid (no reference needed): whole or streamed,
2D or the middle plane of a volume, and the report says so above the limit."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from helpers import run_record

from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.evaluation import streamed
from utom_core.evaluation.base import Sample
from utom_core.evaluation.periodic import PERIODIC_LIMIT, PeriodicArtefact
from utom_core.methods.cycle import UTOM
from utom_core.networks.base import LatticeNotch
from utom_core.task import Slicing
from utom_core.trained import TrainedModel
from utom_core.workflow.report import write_report


def _texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth random texture in [-0.8, 0.8]: no spectral peak of its own."""
    rng = np.random.default_rng(seed)
    noise = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * _lowpass(shape)).real
    return 0.8 * noise / np.abs(noise).max()


def _lowpass(shape: tuple[int, int]) -> np.ndarray:
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    return np.exp(-(fy**2 + fx**2) / (2 * 0.05**2))


def _grid(shape: tuple[int, int]) -> np.ndarray:
    """A faint 4-px grid, as a stride-2 generator prints it."""
    cols = np.arange(shape[1])
    return 0.05 * np.broadcast_to(np.cos(2 * np.pi * cols / 4), shape)


def test_a_grid_scores_above_the_limit_and_a_texture_below():
    plain = _texture((128, 128))
    assert PeriodicArtefact().evaluate(Sample(prediction=plain[None]))[
        "periodic_artefact"] < PERIODIC_LIMIT
    gridded = PeriodicArtefact().evaluate(Sample(prediction=(plain + _grid(plain.shape))[None]))
    assert gridded["periodic_artefact"] > 10 * PERIODIC_LIMIT


def test_a_notched_outputs_dip_is_not_read_as_a_peak_but_a_grid_still_is():
    """``lattice_notch`` empties the lattice frequencies and the spectrum 3–8 bins around
    them. A faint lattice left in such an output, no stronger than the image's own detail
    beyond the dip, is no grid (the 3–8-bin ring alone reads it at 7.8); a strong one is."""
    notch = LatticeNotch(6.0)
    # fine detail to the Nyquist frequency, as tissue has (the smooth texture has none there)
    plain = _texture((256, 256)) + np.random.default_rng(1).normal(0, 0.05, (256, 256))
    with torch.no_grad():
        notched = notch(torch.from_numpy(plain)[None, None].float())[0, 0].numpy()
    for amplitude, gridded in ((0.008, False), (0.2, True)):
        image = notched + amplitude * _grid(plain.shape)
        score = PeriodicArtefact().evaluate(Sample(prediction=image[None]))["periodic_artefact"]
        assert (score > 10 * PERIODIC_LIMIT) if gridded else (score < PERIODIC_LIMIT), score


def test_a_volume_is_scored_on_its_middle_plane():
    volume = np.stack([_texture((96, 96), seed) for seed in range(5)])[None]
    volume[0, 2] += _grid((96, 96))
    assert PeriodicArtefact().evaluate(Sample(prediction=volume))[
        "periodic_artefact"] > PERIODIC_LIMIT
    assert PeriodicArtefact().evaluate(Sample(prediction=volume[:, :2]))[
        "periodic_artefact"] < PERIODIC_LIMIT


def _predictor() -> TrainedModel:
    unit = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype=PixelType.uint8)
    return TrainedModel(
        generator=None, source=Domain(name="he", channels=3, dtype=PixelType.uint8,  # type: ignore[arg-type]
                                      background=Polarity.bright),
        target=Domain(name="he", channels=3, dtype=PixelType.uint8, background=Polarity.bright),
        source_norm=unit, target_norm=unit, source_threshold=200.0, target_threshold=200.0,
        slicing=Slicing.xy, task="t", config=None)  # type: ignore[arg-type]


def test_a_streamed_prediction_scores_its_central_crop_as_it_would_whole(tmp_path, monkeypatch):
    shape = (1100, 1070)  # larger than the measured 1024² crop: the crop's place matters
    grey = _texture(shape) + _grid(shape) * (np.arange(shape[0]) > 600)[:, None]
    rgb = np.clip((grey + 1) * 127.5, 0, 255).astype(np.uint8)
    path = tmp_path / "prediction.tif"
    tifffile.imwrite(path, np.repeat(rgb[..., None], 3, axis=-1), photometric="rgb")
    args = ({}, _predictor(), path, path, None)  # no task evaluators: periodic is always there
    whole = streamed.evaluate_prediction(*args, tmp_path / "whole").metrics
    monkeypatch.setattr(streamed, "WHOLE_VALUES", 0)
    strips = streamed.evaluate_prediction(*args, tmp_path / "strips").metrics
    assert set(whole) == {"periodic_artefact"}
    assert whole["periodic_artefact"] > PERIODIC_LIMIT
    assert strips["periodic_artefact"] == pytest.approx(whole["periodic_artefact"], rel=1e-4)


@pytest.mark.parametrize(("score", "said"), [(3.0, False), (40.0, True)])
def test_the_report_says_when_the_output_carries_a_grid(tmp_path, score, said):
    metrics = {"content_iou": 0.8, "periodic_artefact": score}
    write_report(tmp_path / "report.md", run_record(metrics=metrics), tmp_path, UTOM)
    text = (tmp_path / "report.md").read_text()
    assert "| periodic_artefact |" in text
    assert ("carries a periodic grid" in text) is said
