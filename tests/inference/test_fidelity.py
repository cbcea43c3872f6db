"""The fidelity map: its terms, streamed with the prediction, written beside it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from helpers import Identity, blobs, run_record
from reliability.checks import save_model

from utom_core.domain import Normalisation
from utom_core.errors import UtomError
from utom_core.inference import PredictOptions, Predictor, TileOptions, predict_file
from utom_core.inference.fidelity import (
    SMOOTH,
    SPREAD_FULL,
    FidelityTerms,
    fidelity_path,
    fraction_above,
)
from utom_core.inference.planes import PlanePredictor
from utom_core.networks.base import Generator
from utom_core.plugins import get_registry
from utom_core.records import RunRecord
from utom_core.saliency import SigmoidSaliency, gaussian_blur
from utom_core.trained import load_model
from utom_tasks.denoise import TASK

UNIT = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")
TERMS = FidelityTerms(SigmoidSaliency(0.0), SigmoidSaliency(0.0))


class Flat(Identity):
    """Predicts background everywhere: content vanishes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, -1.0)


class Lopsided(Identity):
    """Adds a left-to-right ramp: a left-right flip predicts the opposite ramp."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.linspace(-0.3, 0.3, x.shape[-1])


def _fidelity(generator: Generator, plane: np.ndarray, views: int, tile: int = 64) -> np.ndarray:
    out = np.zeros((1, *plane.shape[1:]), np.float32)

    def keep(ys, xs, data):
        out[:, ys, xs] = data

    predictor = PlanePredictor(generator, UNIT, TileOptions(tile=tile, views=views),
                               fidelity=TERMS)
    predictor(lambda ys, xs: plane[:, ys, xs], plane.shape[1:], lambda *_: None, keep)
    return out[0]


def _plane() -> np.ndarray:
    return (blobs(np.random.default_rng(0), 96) * 2 - 1).astype(np.float32)[None]


def test_a_faithful_generator_scores_zero_everywhere():
    assert np.array_equal(_fidelity(Identity(1), _plane(), views=8), np.zeros((96, 96)))


def _smoothed(term: np.ndarray) -> np.ndarray:
    return gaussian_blur(torch.from_numpy(term[None, None]).double(), SMOOTH)[0, 0].numpy()


def test_vanished_content_scores_as_the_masks_disagree():
    plane = _plane()
    fidelity = _fidelity(Flat(1), plane, views=1)  # one view: the masks are the only term
    content = TERMS.source(torch.from_numpy(plane[None]))[0, 0].numpy()
    masks = content - TERMS.target(torch.full((1, 1, 1, 1), -1.0))[0, 0, 0, 0].item()
    np.testing.assert_allclose(fidelity, _smoothed(masks), atol=1e-5)
    assert fidelity.max() > 0.9 and fidelity.min() < 0.1


def test_views_that_disagree_raise_it_and_one_view_cannot():
    plane = np.zeros((1, 96, 96), np.float32) - 1  # background: the masks agree
    one, two = (_fidelity(Lopsided(1), plane, views=v) for v in (1, 2))
    assert one.max() < 0.01
    ramp = np.abs(np.linspace(-0.3, 0.3, 96))  # views: ±ramp, std = |ramp|; masks agree: 0
    views = np.broadcast_to(np.clip(ramp / SPREAD_FULL, 0, 1), (96, 96))
    np.testing.assert_allclose(two, _smoothed(views / 2), atol=1e-5)  # mean of two terms


@pytest.mark.parametrize("suffix", [".tif", ".ome.zarr"])
def test_written_beside_the_prediction_in_its_format(tmp_path, suffix):
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, (1000 + 20000 * blobs(np.random.default_rng(1), 80)
                             ).astype(np.uint16))
    predictor = Predictor(load_model(run, build_generator=get_registry().build_generator),
                          PredictOptions(views=2, fidelity=True))
    output = predict_file(predictor, image, tmp_path / f"out{suffix}", show_progress=False)
    sibling = fidelity_path(output)
    assert sibling.name == f"out.fidelity{suffix}"
    if suffix == ".tif":
        data = tifffile.imread(sibling)  # an independent reader
    else:
        data = np.asarray(zarr.open_group(str(sibling), mode="r")["0"])
    assert data.dtype == np.float32 and data.shape[-2:] == (80, 80)
    assert data.min() >= 0 and data.max() <= 1 and data.max() > 0
    assert fraction_above(sibling, 0.0) == pytest.approx(np.mean(data > 0))
    output.rename(tmp_path / "moved")  # the map alone is left: it is not clobbered either
    kept = sibling.stat().st_mtime_ns if suffix == ".tif" else None
    with pytest.raises(UtomError, match="already exists"):
        predict_file(predictor, image, output, show_progress=False)
    assert not output.exists()
    if kept is not None:
        assert sibling.stat().st_mtime_ns == kept


def test_a_png_outputs_map_is_a_tiff():
    assert fidelity_path(Path("out/x.png")) == Path("out/x.fidelity.tif")
    assert fidelity_path(Path("x.ome.tif")) == Path("x.fidelity.ome.tif")


def test_records_read_with_and_without_a_fidelity_map():
    row = dict(test="a.tif", reference=None, prediction="p.tif", metrics={})
    old = run_record(images=[row])
    assert old.images[0].fidelity is None
    new = run_record(images=[{**row, "fidelity": {"path": "p.fidelity.tif", "level": 0.5,
                                                  "above": 0.1}}])
    assert RunRecord.model_validate_json(new.model_dump_json()).images[0].fidelity.above == 0.1


def test_utom_predict_refuses_to_clobber_a_map_before_predicting(cli, tmp_path):
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((40, 40), 5000, np.uint16))
    (tmp_path / "out.fidelity.tif").write_bytes(b"precious notes")
    for extra in ((), ("--overwrite",)):  # --overwrite replaces only what utom wrote
        result = cli("predict", run, image, "--out", tmp_path / "out.tif", "--fidelity", *extra)
        assert result.code != 0 and "out.fidelity.tif" in result.err
        assert len(result.err.strip().splitlines()) == 1
        assert (tmp_path / "out.fidelity.tif").read_bytes() == b"precious notes"
        assert not (tmp_path / "out.tif").exists()
    result = cli("predict", run, image, "--out", tmp_path / "new.tif", "--fidelity")
    assert result.code == 0, result.err
    assert tifffile.imread(tmp_path / "new.fidelity.tif").shape == (40, 40)


def test_a_map_never_lands_on_another_output(cli, tmp_path):
    """An input named like another's map (``a.fidelity.tif`` beside ``a.tif``) is refused
    before any work, with or without --overwrite: one would silently replace the other."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    (tmp_path / "in").mkdir()
    for name in ("a.tif", "a.fidelity.tif"):
        tifffile.imwrite(tmp_path / "in" / name, np.full((40, 40), 5000, np.uint16))
    for extra in ((), ("--overwrite",)):
        result = cli("predict", run, tmp_path / "in", "--out", tmp_path / "out", "--fidelity",
                     *extra)
        assert result.code != 0 and len(result.err.strip().splitlines()) == 1
        assert "a.fidelity.tif would hold both" in result.err, result.err
        assert not (tmp_path / "out").exists()
    result = cli("predict", run, tmp_path / "in", "--out", tmp_path / "out")  # no maps: fine
    assert result.code == 0, result.err


def test_an_existing_output_is_refused_before_its_map_is_made(tmp_path):
    """The Python API refuses an existing output up front (not after predicting it), and
    leaves no map of a prediction it did not write."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((40, 40), 5000, np.uint16))
    (tmp_path / "out.tif").write_bytes(b"an earlier prediction")
    predictor = Predictor(load_model(run, build_generator=get_registry().build_generator),
                          PredictOptions(views=1, fidelity=True))
    with pytest.raises(UtomError, match=r"out\.tif already exists"):
        predict_file(predictor, image, tmp_path / "out.tif", show_progress=False)
    assert not (tmp_path / "out.fidelity.tif").exists()
    assert (tmp_path / "out.tif").read_bytes() == b"an earlier prediction"


def test_overwriting_without_a_map_removes_the_earlier_map(cli, tmp_path):
    """A map left by an earlier prediction would describe an image that is gone (and napari
    would lay it over the new one): replacing the prediction without a map removes it, only
    once the new prediction is in place."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((40, 40), 5000, np.uint16))
    out, maps = tmp_path / "out.tif", tmp_path / "out.fidelity.tif"
    assert cli("predict", run, image, "--out", out, "--fidelity").code == 0
    result = cli("predict", run, image, "--out", out, "--overwrite")
    assert result.code == 0, result.err
    assert out.exists() and not maps.exists()
    assert f"removed {maps}" in result.err
    (tmp_path / "in2.tif").write_bytes(image.read_bytes())
    predictor = Predictor(load_model(run, build_generator=get_registry().build_generator),
                          PredictOptions(views=1, fidelity=True))
    predict_file(predictor, image, out, overwrite=True, show_progress=False)
    assert maps.exists()
    predictor = Predictor(predictor.model, PredictOptions(views=1))
    predict_file(predictor, tmp_path / "in2.tif", out, overwrite=True, show_progress=False)
    assert not maps.exists()  # the Python API alike


def test_overwriting_keeps_what_may_not_be_that_map(cli, tmp_path):
    """Only a map of the replaced prediction goes: not another image's (``a.png``'s map is
    ``a.tif``'s name), not an image of the job, not a prediction named like a map."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((40, 40), 5000, np.uint16))
    png, maps = tmp_path / "p" / "out.png", tmp_path / "p" / "out.fidelity.tif"
    assert cli("predict", run, image, "--out", png, "--fidelity").code == 0
    for _ in range(2):  # out.tif new, then replaced: the map is out.png's either way
        result = cli("predict", run, image, "--out", tmp_path / "p" / "out.tif", "--overwrite")
        assert result.code == 0 and "removed" not in result.err, result.err
    assert maps.exists()
    folder = tmp_path / "in"  # an image named like another's map is an image of the job
    folder.mkdir()
    for name in ("a.tif", "a.fidelity.tif"):
        tifffile.imwrite(folder / name, np.full((40, 40), 5000, np.uint16))
    for inputs in ((folder,), (folder,), (folder / "a.tif",)):  # the last: a uint16 prediction
        result = cli("predict", run, *inputs, "--out", tmp_path / "o", "--overwrite")
        assert result.code == 0 and "removed" not in result.err, result.err
    assert (tmp_path / "o" / "a.fidelity.tif").exists()
    result = cli("predict", run, folder / "a.fidelity.tif", "--out", folder / "a.tif",
                 "--overwrite")
    assert result.code == 0 and (folder / "a.fidelity.tif").exists(), result.err


class _Sink:
    """A sink that records its commit, or fails it."""

    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        pass

    def commit(self, replace: bool = False) -> None:
        if self.fails:
            raise UtomError(f"{self.name}: appeared while utom was writing it")
        self.log.append(f"commit {self.name}")

    def abort(self) -> None:
        self.log.append(f"abort {self.name}")


@pytest.mark.parametrize(("fails", "expected"), [
    (False, ["commit prediction", "commit map"]), (True, ["abort prediction", "abort map"])])
def test_the_map_is_committed_after_its_prediction(tmp_path, fails, expected):
    """A prediction whose commit fails takes its map with it: no map is left of an image that
    was not written."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.full((40, 40), 5000, np.uint16))
    predictor = Predictor(load_model(run, build_generator=get_registry().build_generator),
                          PredictOptions(views=1, fidelity=True))
    log: list[str] = []
    source = predictor.open(image)
    try:
        with pytest.raises(UtomError, match="appeared") if fails else contextlib.nullcontext():
            predictor.predict(source, lambda info: _Sink(log, "prediction", fails),
                              create_fidelity=lambda info: _Sink(log, "map"))
    finally:
        source.close()
    assert log == expected
