"""``--set compile=true``: the training step runs through torch.compile."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers import DENOISE, TINY, train, weights

from utom_core.config import TrainConfig
from utom_core.plugins import get_registry


@pytest.fixture
def fresh_dynamo():
    yield
    torch._dynamo.reset()


@pytest.mark.slow
def test_compile_runs_the_training_step_through_torch_compile(tmp_path, blob_tiffs, monkeypatch,
                                                              fresh_dynamo):
    """Through dynamo and AOTAutograd (the graphs inductor compiles), without spending the
    minutes inductor's C++ compiling takes here: the weights must be those of eager mode."""
    real, compiled = torch.compile, []

    def aot_eager(module, **options):
        compiled.append(type(module).__name__)
        return real(module, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", aot_eager)
    # fp32 and nearest-neighbour resizes: bf16 and aot_eager's decomposed bilinear resize
    # round differently from eager kernels, and Adam's first steps turn rounding into ±lr
    cfg = TrainConfig(**TINY, iterations=3, seed=2, amp=False, upsampling="resize")
    a, b = blob_tiffs["a"], blob_tiffs["b"]
    train(DENOISE, cfg, tmp_path / "eager", a, b, show_progress=False)
    assert compiled == []
    train(DENOISE, cfg.model_copy(update={"compile": True}), tmp_path / "compiled", a, b,
          show_progress=False)
    # every module twice: to be updated (DDP-wrapped) and to judge (StepNetworks.plain)
    assert sorted(compiled) == ["PatchGAN"] * 4 + ["ResnetGenerator"] * 4
    eager, fast = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    for key in eager:
        assert torch.allclose(eager[key], fast[key], atol=1e-5), key


@pytest.mark.slow
def test_inductor_compiles_a_generator_here(fresh_dynamo):
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("torch.compile (inductor) needs a C++ compiler on a CPU; none is installed")
    generator = get_registry().build_generator(TrainConfig(**TINY), 1, 1).eval()
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(torch.compile(generator)(x), generator(x), atol=1e-5)


@pytest.mark.slow
def test_inductor_compiles_a_generators_backward_here(fresh_dynamo):
    """The training step's backward through inductor: the default upsampling's edge
    replication once failed inductor's stride check there (``replicate_edges``)."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("torch.compile (inductor) needs a C++ compiler on a CPU; none is installed")
    cfg = TrainConfig(**TINY)
    assert cfg.upsampling == "smooth"
    generator = get_registry().build_generator(cfg, 1, 1)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    gradients = []
    for run in (generator, torch.compile(generator)):
        generator.zero_grad()
        run(x).square().mean().backward()
        gradients.append([p.grad.clone() for p in generator.parameters()])
    for eager, compiled in zip(*gradients, strict=True):
        assert torch.allclose(eager, compiled, atol=1e-5, rtol=1e-4)
