"""Methods as plugins: PatchNCE, the contrastive methods (cut, fastcut, utom-cut), the
one-generator direction error, and a third-party method through ``register_methods``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from helpers import blobs

from utom_core import plugins
from utom_core.config import TrainConfig
from utom_core.hookspecs import hookimpl
from utom_core.methods import TrainingMethod
from utom_core.methods.losses import discriminator_loss, l1, lsgan
from utom_core.methods.patchnce import ProjectionHeads, patch_nce, patch_nce_loss
from utom_core.networks import PatchGAN, ResnetGenerator
from utom_core.trained import load_model
from utom_core.training.train import train
from utom_tasks.denoise import TASK as DENOISE

TINY = dict(ngf=8, n_blocks=1, ndf=8, d_layers=2, tile=32, pool_size=4, sample_pixels=5000,
            log_every=10, preview_every=1000, checkpoint_every=1000)


def test_patch_nce_is_least_when_corresponding_patches_match():
    torch.manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(2, 64, 16), dim=-1)
    matched = patch_nce(keys.clone(), keys, 0.07)
    shuffled = patch_nce(keys[:, torch.randperm(64)], keys, 0.07)
    noisy = patch_nce(torch.nn.functional.normalize(keys + 0.3 * torch.randn_like(keys), dim=-1),
                      keys, 0.07)
    assert matched < noisy < shuffled
    assert shuffled > np.log(64) / 2  # chance level is ln(64) ≈ 4.2


def test_patch_nce_gradient_reaches_the_generators_encoder():
    torch.manual_seed(0)
    g = ResnetGenerator(1, 1, ngf=4, n_blocks=2)
    heads = ProjectionHeads(g.encoder_channels())
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    loss = patch_nce_loss(g.encoder_features, heads, x, g(x), 32, 0.07,
                          np.random.default_rng(0))
    loss.backward()
    first_conv = g.model[1].weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    assert all(p.grad is not None for p in heads.parameters())


@pytest.fixture
def noisy_and_clean(tmp_path):
    """Unpaired noisy (A) and clean (B) blob images, and a held-out noisy image with its
    clean version: a mapping every method should learn a little of in a few hundred steps."""
    rng = np.random.default_rng(0)
    paths: dict[str, list] = {"a": [], "b": []}
    for domain, noise in (("a", 3000), ("b", 0)):
        for i in range(2):
            image = 1000 + 20000 * blobs(rng) + rng.normal(0, noise or 1e-9, (96, 96))
            paths[domain].append(tmp_path / f"{domain}{i}.tif")
            tifffile.imwrite(paths[domain][-1], image.clip(0, 65535).astype("uint16"))
    clean = 1000 + 20000 * blobs(rng, 64, 6)
    noisy = (clean + rng.normal(0, 3000, clean.shape)).clip(0, 65535)
    return paths, noisy, clean


def _error(run_dir, noisy, clean) -> float:
    p = load_model(run_dir)
    x = torch.from_numpy(p.source_norm.apply(noisy[None].astype(np.float32)))[None]
    with torch.no_grad():
        out = p.target_norm.invert(p.generator(x)[0].numpy()).astype(float)
    return float(np.abs(out[0] - clean).mean())


@pytest.mark.parametrize("method", ["cut", "fastcut", "utom-cut"])
def test_each_contrastive_method_moves_g_towards_the_target(tmp_path, noisy_and_clean, method):
    paths, noisy, clean = noisy_and_clean
    cfg = TrainConfig(**TINY, iterations=200, seed=0, ema_decay=0.9, method=method)
    train(DENOISE, cfg.model_copy(update={"iterations": 1}), tmp_path / "start", paths["a"],
          paths["b"], show_progress=False)
    train(DENOISE, cfg, tmp_path / "end", paths["a"], paths["b"], show_progress=False)
    before = _error(tmp_path / "start", noisy, clean)
    after = _error(tmp_path / "end", noisy, clean)
    assert after < 0.65 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "end" / "log.jsonl").read_text().splitlines()]
    assert {"gan_ab", "nce_a", "disc_b"} <= set(log[-1])
    assert (log[-1]["saliency_a"] > 0) == (method == "utom-cut")
    assert (log[-1]["nce_b"] > 0) == (method != "fastcut")  # the NCE identity term


def test_one_generator_runs_refuse_b2a_in_one_line(tmp_path, blob_tiffs, cli):
    cfg = TrainConfig(**TINY, iterations=2, method="cut")
    train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"], show_progress=False)
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert "g_ab" in state and "g_ba" not in state and "ema_ba" not in state
    done = cli("predict", tmp_path / "run", blob_tiffs["b"][0], "--direction", "b2a",
               "--out", tmp_path / "p.tif")
    assert done.code != 0 and "cannot predict --direction b2a" in done.err
    assert len(done.err.strip().splitlines()) == 1 and not (tmp_path / "p.tif").exists()
    ok = cli("predict", tmp_path / "run", blob_tiffs["a"][0], "--out", tmp_path / "q.tif")
    assert ok.code == 0, ok.err


class L1ToInput(TrainingMethod):
    """The example of docs/plugins.md: one generator kept near its input by L1, pushed
    towards B by a PatchGAN."""

    name, summary, loss_terms, two_sided = "toy-l1", "LSGAN + L1 to the input", (
        "gan_ab", "l1_a", "generator", "disc_b"), False

    def build(self, cfg, channels, generator):
        return {"g_ab": generator(*channels), "d_b": PatchGAN(channels[1], cfg.ndf, cfg.d_layers)}

    def optimisers(self, modules, cfg):
        return {name: torch.optim.Adam(modules[net].parameters(), lr=cfg.lr, betas=cfg.betas)
                for name, net in (("opt_g", "g_ab"), ("opt_d", "d_b"))}

    def step(self, ctx, nets, optimisers, real_a, real_b):
        with ctx.autocast():
            fake_b = nets.trained["g_ab"](real_a)
            terms = {"gan_ab": lsgan(nets.plain["d_b"](fake_b), True), "l1_a": l1(fake_b, real_a)}
            terms["generator"] = terms["gan_ab"] + 10 * terms["l1_a"]
        optimisers["opt_g"].zero_grad()
        terms["generator"].backward()
        optimisers["opt_g"].step()
        terms["disc_b"] = discriminator_loss(nets.trained["d_b"](real_b),
                                             nets.trained["d_b"](fake_b.detach()))
        optimisers["opt_d"].zero_grad()
        terms["disc_b"].backward()
        optimisers["opt_d"].step()
        return terms


class ToyMethodPlugin:
    @hookimpl
    def register_methods(self, register):
        register(L1ToInput())


@pytest.fixture
def toy_method():
    plugin = ToyMethodPlugin()
    plugin.__name__ = "toy_method_plugin"
    plugins.add_plugin(plugin)
    yield
    plugins.remove_plugin(plugin)


def test_a_third_party_method_trains_resumes_and_appears_in_the_bench(tmp_path, cli, toy_method,
                                                                      blob_tiffs):
    listed = cli("methods", "--json")
    assert "toy-l1" in {row["method"] for row in json.loads(listed.out)}
    cfg = TrainConfig(**TINY, iterations=4, method="toy-l1", seed=2)
    straight = train(DENOISE, cfg, tmp_path / "a", blob_tiffs["a"], blob_tiffs["b"],
                     show_progress=False)
    train(DENOISE, cfg, tmp_path / "b", blob_tiffs["a"], blob_tiffs["b"], stop_at=2,
          show_progress=False)
    train(DENOISE, cfg, tmp_path / "b", resume=True, show_progress=False)
    one, two = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True)
                for d in ("a", "b"))
    assert straight.iteration == 4
    assert all(torch.equal(one["g_ab"][k], two["g_ab"][k]) for k in one["g_ab"])
    out = tmp_path / "bench"
    done = cli("bench", "--tasks", "denoise", "--methods", "toy-l1,cut", "--budget", "smoke",
               "--seeds", "1", "--set", "iterations=2", "--out", out)
    assert done.code == 0, done.err
    rows = {row["key"]: row for row in json.loads((out / "bench.json").read_text())["runs"]}
    assert rows["denoise/toy-l1/seed0"]["status"] == "ok"
    table = (out / "bench.md").read_text()
    assert "| toy-l1 |" in table and "## Seconds per iteration" in table


def test_unknown_methods_are_refused_naming_the_known(cli, tmp_path):
    done = cli("train", "denoise", "--method", "cycle-gan", "--a", tmp_path, "--b", tmp_path,
               "--out", tmp_path / "run")
    assert done.code != 0 and "unknown method 'cycle-gan'" in done.err and "utom-cut" in done.err
