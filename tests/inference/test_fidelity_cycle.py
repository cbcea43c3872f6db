"""The fidelity map's cycle residual |F(G(x)) − x| and its gradient: the terms, how the map
combines them, the reverse generator it loads, and runs without one (one-sided methods)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from helpers import Identity, blobs
from reliability.checks import save_model

from utom_core.checkpoints import load_torch, save_torch
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.inference.fidelity import (
    CYCLE_FULL,
    GRADIENT_FULL,
    FidelityTerms,
    fidelity_path,
)
from utom_core.plugins import get_registry
from utom_core.saliency import SigmoidSaliency
from utom_core.trained import MODEL_FILE, load_model
from utom_tasks.denoise import TASK


class Scale(Identity):
    """Multiplies by ``factor``: Scale(2) then Scale(0.5) is the identity, neither alone is."""

    def __init__(self, factor: float) -> None:
        super().__init__(1)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _terms(reverse: Identity | None) -> FidelityTerms:
    return FidelityTerms(SigmoidSaliency(0.0), SigmoidSaliency(0.0), reverse)


def _tiles() -> torch.Tensor:
    plane = blobs(np.random.default_rng(0), 48) * 2 - 1
    return torch.from_numpy(np.stack([plane, -plane])[:, None]).float()


def test_the_cycle_term_is_zero_where_f_undoes_g_and_measures_what_it_loses():
    x = _tiles()
    mean = (x * 2).double()  # G = Scale(2), one view
    undone = _terms(Scale(0.5)).terms(x, mean, mean**2)
    assert undone["cycle"].shape == (2, 1, 48, 48)
    assert torch.count_nonzero(undone["cycle"]) == 0
    kept = _terms(Scale(1.0)).terms(x, mean, mean**2)["cycle"]  # F(G(x)) = 2x: residual |x|
    expected = (x.abs() / CYCLE_FULL).clamp(max=1).double()
    torch.testing.assert_close(kept, expected)
    assert kept.max() > 0.5
    combined = _terms(Scale(1.0))(x, mean, mean**2)
    assert combined.shape == (2, 1, 48, 48)
    assert torch.all(combined >= 0) and torch.all(combined <= 1) and combined.max() > 0.2


class Step(Identity):
    """Adds 0.4 to the left half: F(G(x)) − x is a step, uniform on either side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.4 * (torch.arange(x.shape[-1]) < x.shape[-1] // 2)


def test_the_gradient_term_marks_the_edge_a_cycle_invents_not_the_flat_residual():
    x = torch.zeros(1, 1, 32, 32)
    found = _terms(Step(1)).terms(x, x.double(), x.double() ** 2)
    cycle, gradient = found["cycle"][0, 0], found["gradient"][0, 0]
    assert torch.allclose(cycle[:, :16], torch.tensor(0.4 / CYCLE_FULL, dtype=torch.float64))
    assert torch.all(cycle[:, 16:] == 0)
    assert torch.all(gradient[:, 15:17] > 0.5 * 0.4 / GRADIENT_FULL / 2)  # half the step, σ 1
    assert torch.all(gradient[:, :9] < 1e-3) and torch.all(gradient[:, 23:] < 1e-3)


def test_a_uniform_map_stays_uniform_and_is_the_mean_of_the_terms():
    """Smoothing is a weighted mean (a constant map is unchanged, the range stays [0, 1]); with
    one view the views term (exactly 0) is left out of the mean."""
    x = torch.full((1, 1, 40, 40), 0.3)
    mean = (x * 2).double()  # G = Scale(2), F = Scale(1): a residual of 0.3 everywhere
    found = _terms(Scale(1.0)).terms(x, mean, mean**2)
    masks = float(found["masks"][0, 0, 0, 0])
    expected = (masks + 0.3 / CYCLE_FULL + 0.0) / 3  # masks, cycle, gradient (flat: 0)
    torch.testing.assert_close(_terms(Scale(1.0))(x, mean, mean**2),
                               torch.full((1, 1, 40, 40), expected, dtype=torch.float64))


def test_without_a_reverse_generator_there_is_no_cycle_term():
    x = _tiles()
    assert set(_terms(None).terms(x, x.double(), x.double() ** 2)) == {"views", "masks"}


def _image(tmp_path):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, (1000 + 20000 * blobs(np.random.default_rng(1), 64)
                             ).astype(np.uint16))
    return image


def _predict(run, image, out, reverse: bool):
    model = load_model(run, build_generator=get_registry().build_generator, reverse=reverse)
    predictor = Predictor(model, PredictOptions(views=2, fidelity=True))
    output = predict_file(predictor, image, out, show_progress=False)
    return model, tifffile.imread(fidelity_path(output))


def test_a_two_sided_runs_map_carries_the_cycle_residual(tmp_path):
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = _image(tmp_path)
    with_f, cycled = _predict(run, image, tmp_path / "with.tif", reverse=True)
    without, plain = _predict(run, image, tmp_path / "without.tif", reverse=False)
    assert with_f.reverse is not None and without.reverse is None
    assert cycled.shape == plain.shape == (64, 64) and cycled.dtype == np.float32
    assert np.all(cycled >= 0) and np.all(cycled <= 1)
    assert np.mean(np.abs(cycled - plain) > 1e-3) > 0.5  # an untrained F does not undo G


def test_a_one_sided_run_predicts_its_map_without_the_cycle_term(tmp_path):
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    state = load_torch(run / MODEL_FILE)
    for key in ("g_ba", "ema_ba"):  # what a cut run holds: one direction
        del state[key]
    save_torch(state, run / MODEL_FILE)
    model, fidelity = _predict(run, _image(tmp_path), tmp_path / "out.tif", reverse=True)
    assert model.reverse is None
    assert fidelity.shape == (64, 64) and fidelity.min() >= 0 and fidelity.max() <= 1


@pytest.mark.slow
def test_utom_run_of_cut_writes_its_map(cli, tmp_path):
    out = tmp_path / "cut"
    result = cli("run", "denoise", "--method", "cut", "--budget", "smoke", "--out", out)
    assert result.code == 0, result.err
    assert list((out / "predictions").glob("*.fidelity.*"))


def test_the_python_api_loads_f_only_for_a_fidelity_map(tmp_path):
    from utom_core.api import load_run

    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    mapped = load_run(run, options=PredictOptions(fidelity=True), device="cpu")
    assert mapped.model.reverse is not None
    assert load_run(run, device="cpu").model.reverse is None
