"""Training end to end at toy size: determinism, bit-exact resume, learning, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from helpers import DENOISE, TINY, assert_same, blobs, build_generator, train, weights

from utom_core.config import TrainConfig
from utom_core.device import fused_adam
from utom_core.domain import Domain, PixelType, Polarity
from utom_core.errors import UtomError
from utom_core.task import Task
from utom_core.trained import load_model


def test_same_seed_same_weights(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=4, seed=7)
    for name in ("r1", "r2"):
        train(DENOISE, cfg, tmp_path / name, blob_tiffs["a"], blob_tiffs["b"], show_progress=False)
    assert_same(weights(tmp_path / "r1"), weights(tmp_path / "r2"))
    other = TrainConfig(**TINY, iterations=4, seed=8)
    train(DENOISE, other, tmp_path / "r3", blob_tiffs["a"], blob_tiffs["b"], show_progress=False)
    assert not torch.equal(weights(tmp_path / "r1")["model.1.weight"],
                           weights(tmp_path / "r3")["model.1.weight"])


@pytest.mark.parametrize("method", ["utom", "fastcut", "utom-cut"])
def test_resume_is_bit_exact(tmp_path, blob_tiffs, method):
    """Every method family: the patch positions and flips PatchNCE draws come from the run's
    checkpointed generator, so a resumed run repeats them."""
    cfg = TrainConfig(**TINY, iterations=20, seed=3, method=method)
    train(DENOISE, cfg, tmp_path / "straight", blob_tiffs["a"], blob_tiffs["b"],
          show_progress=False)
    first = train(DENOISE, cfg, tmp_path / "resumed", blob_tiffs["a"], blob_tiffs["b"],
                  stop_at=10, show_progress=False)
    assert first.iteration == 10
    second = train(DENOISE, cfg, tmp_path / "resumed", resume=True, show_progress=False)
    assert second.iteration == 20
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    networks = [name for name in straight if name.startswith(("g_", "d_", "ema_", "heads"))]
    assert {"g_ab", "d_b", "ema_ab"} <= set(networks)
    for name in networks:
        assert_same(straight[name], resumed[name])
    # Adam's fused kernel where torch has it for the CPU
    kinds = {(group["fused"], group["foreach"]) for name in ("opt_g", "opt_d")
             for group in resumed[name]["param_groups"]}
    assert kinds == ({(True, None)} if fused_adam(torch.device("cpu")) else {(None, True)})
    assert straight["images_seen"] == resumed["images_seen"] == 20
    log_text = (tmp_path / "resumed" / "log.jsonl").read_text()
    log = [json.loads(line) for line in log_text.splitlines()]
    assert [row["iteration"] for row in log] == list(range(1, 21))


def test_a_fused_adam_resumes_multi_tensor_where_torch_has_no_fused_kernel(tmp_path, blob_tiffs,
                                                                           monkeypatch):
    """A checkpoint of a fused Adam (CUDA, torch >= 2.4) resumed where torch has no fused
    kernel for the device (an older torch's CPU, here pretended) continues multi-tensor."""
    if not fused_adam(torch.device("cpu")):
        pytest.skip("this torch has no fused Adam for the CPU, so no fused checkpoint to resume")
    cfg = TrainConfig(**TINY, iterations=6, seed=3)
    train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"], stop_at=3,
          show_progress=False)
    monkeypatch.setattr("utom_core.methods.base.fused_adam", lambda device: False)
    assert train(DENOISE, cfg, tmp_path / "run", resume=True, show_progress=False).iteration == 6
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert {(group["fused"], group["foreach"]) for name in ("opt_g", "opt_d")
            for group in state[name]["param_groups"]} == {(None, True)}


def test_resume_with_a_new_total_trains_the_difference(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=3, seed=1)
    train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"], show_progress=False)
    more = train(DENOISE, cfg, tmp_path / "run", resume=True, iterations=5, show_progress=False)
    assert more.iteration == 5
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["iterations"] == 5 and saved["images_per_epoch"] == 1  # ρ schedule kept


def _inverted_pair(tmp_path):
    """Domain B is domain A inverted (bright background): a trivially learnable mapping."""
    rng = np.random.default_rng(5)
    a_path, b_path = tmp_path / "dark.tif", tmp_path / "bright.tif"
    tifffile.imwrite(a_path, (20 + 200 * blobs(rng, 128, 30)).astype("uint8"))
    tifffile.imwrite(b_path, (235 - 200 * blobs(rng, 128, 30)).astype("uint8"))
    test = (20 + 200 * blobs(rng, 64, 8)).astype("uint8")
    return a_path, b_path, test


def test_training_moves_g_towards_the_target(tmp_path):
    a_path, b_path, test = _inverted_pair(tmp_path)
    task = Task(name="toy-invert", summary="toy",
                domain_a=Domain(name="dark", channels=1, dtype=PixelType.uint8, threshold=80),
                domain_b=Domain(name="bright", channels=1, dtype=PixelType.uint8,
                                background=Polarity.bright, threshold=160))
    cfg = TrainConfig(**{**TINY, "log_every": 10}, iterations=80, seed=0, ema_decay=0.9,
                      rho_decay_fraction=2.0)

    def error_vs_target(run_dir):
        p = load_model(run_dir, build_generator=build_generator)
        x = torch.from_numpy(p.source_norm.apply(test[None]))[None]
        with torch.no_grad():
            out = p.target_norm.invert(p.generator(x)[0].numpy()).astype(float)
        return np.abs(out[0] - (255.0 - test)).mean()

    train(task, cfg.model_copy(update={"iterations": 1}), tmp_path / "start", [a_path], [b_path],
          show_progress=False)
    train(task, cfg, tmp_path / "end", [a_path], [b_path], show_progress=False)
    before, after = error_vs_target(tmp_path / "start"), error_vs_target(tmp_path / "end")
    assert after < 0.6 * before, (before, after)


def test_threshold_that_marks_nothing_is_refused(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=2, threshold_a=65000.0)
    with pytest.raises(UtomError, match=r"threshold 65000 marks 0\.0% of sampled pixels"):
        train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"],
              show_progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", [{"method": "cyclegan-identity"}, {"identity": True},
                                     {"shared_range": True}])
def test_settings_that_need_equal_channels_are_refused(tmp_path, blob_tiffs, setting):
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.full((64, 64, 3), 200, np.uint8) - (150 * blobs(
        np.random.default_rng(0), 64)[..., None]).astype(np.uint8), photometric="rgb")
    task = Task(name="toy-stain", summary="toy", domain_a=Domain(name="af", channels=1),
                domain_b=Domain(name="he", channels=3, dtype=PixelType.uint8,
                                background=Polarity.bright))
    cfg = TrainConfig(**TINY, iterations=2, **setting)
    with pytest.raises(UtomError, match="needs equal channel counts"):
        train(task, cfg, tmp_path / "run", blob_tiffs["a"], [rgb], show_progress=False)


def test_a_shared_range_is_fitted_on_both_domains(tmp_path, blob_tiffs):
    """Dim A and bright B in the same units: each domain's own range maps both to [-1, 1]
    (hiding the difference); a shared range keeps B brighter than A after normalisation."""
    dim = []
    for i, path in enumerate(blob_tiffs["a"]):
        dim.append(tmp_path / f"dim{i}.tif")
        tifffile.imwrite(dim[-1], (tifffile.imread(path) * 0.7).astype(np.uint16))
    own = train(DENOISE, TrainConfig(**TINY, iterations=1), tmp_path / "own", dim,
                blob_tiffs["b"], show_progress=False)
    shared = train(DENOISE, TrainConfig(**TINY, iterations=1, shared_range=True),
                   tmp_path / "shared", dim, blob_tiffs["b"], show_progress=False)
    meta_own, meta_shared = (json.loads((r.run_dir / "run.json").read_text())
                             for r in (own, shared))
    assert meta_own["normalisation_a"]["high"] < meta_own["normalisation_b"]["high"]
    assert meta_shared["normalisation_a"] == meta_shared["normalisation_b"]
    assert meta_own["normalisation_a"]["high"] < meta_shared["normalisation_a"]["high"]
    # one estimated threshold too: between the dim and the bright domain's own estimates
    assert meta_shared["threshold_a"] == meta_shared["threshold_b"]
    assert meta_own["threshold_a"] < meta_shared["threshold_a"] < meta_own["threshold_b"]


def test_thresholds_given_as_numbers_stay_per_domain_with_a_shared_range(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=1, shared_range=True, threshold_a=3000.0,
                      threshold_b=4000.0)
    run = train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"],
                show_progress=False)
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert (meta["threshold_a"], meta["threshold_b"]) == (3000.0, 4000.0)


def _diverging_at(monkeypatch, number: int, what: str = "loss") -> None:
    """Make the ``number``-th training step diverge: its loss NaN, or (``what="weights"``)
    its update, while the loss it returns is the finite one it followed."""
    from utom_core.methods.cycle import CycleMethod

    original, steps = CycleMethod.step, iter(range(1, 1000))

    def step(self, ctx, nets, optimisers, real_a, real_b):
        terms = original(self, ctx, nets, optimisers, real_a, real_b)
        if next(steps) == number:
            if what == "loss":
                terms["cycle_a"] = terms["cycle_a"] * float("nan")
            else:
                with torch.no_grad():
                    next(nets.plain["g_ab"].parameters()).fill_(float("nan"))
        return terms

    monkeypatch.setattr(CycleMethod, "step", step)


@pytest.mark.parametrize(("what", "said"), [("loss", "cycle_a not finite"),
                                             ("weights", "weights not finite")])
def test_a_diverging_run_stops_at_once_and_says_where(cli, tmp_path, blob_tiffs, monkeypatch,
                                                      what, said):
    """A loss that turns NaN, or an update that makes the weights NaN while its loss was
    finite, stops the run in one line naming the iteration, before anything is saved of the
    weights (the smoke budget checkpoints, validates and previews at iteration 3, and logs
    every 2); the log keeps its rows."""
    from reliability.checks import TINY as TINY_ARGS

    _diverging_at(monkeypatch, 3, what)
    run = tmp_path / "run"
    result = cli("train", "denoise", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
                 "--out", run, *TINY_ARGS, "--iterations", "8")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith(
        f"error: training diverged at iteration 3 ({said}) and stopped at iteration 3")
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in logged] == [1, 2, 3]
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
    assert not (run / "model.pt").exists()


def test_a_run_diverging_over_an_old_output_puts_it_back_and_names_the_new_one(
        cli, tmp_path, blob_tiffs, monkeypatch):
    """``utom run --overwrite`` whose new run diverges after its first checkpoint: the old
    output is back as it was, and the one-line error names where the failed run is kept."""
    from reliability.checks import TINY as TINY_ARGS

    out, data = tmp_path / "out", ("--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0])
    assert cli("run", "denoise", *data, "--out", out, *TINY_ARGS, "--iterations", "2").code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _diverging_at(monkeypatch, 5)
    result = cli("run", "denoise", *data, "--out", out, *TINY_ARGS, "--iterations", "8",
                 "--overwrite")
    (kept,) = tmp_path.glob("out.failed-*")
    lines = result.err.strip().splitlines()
    assert result.code == 2 and "Traceback" not in result.err
    assert lines[-1].startswith("error: training diverged at iteration 5")
    assert lines[-1].endswith("; the previous output is back in place and the failed new run "
                              f"is kept in {kept}")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert (kept / "run" / "checkpoints" / "last.pt").exists()
