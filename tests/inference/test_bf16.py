"""bf16 prediction (`--amp`): fp32 by default, bf16 exactly where the device computes it
natively, and close to fp32 (the measured difference at full size: docs/results/prediction.md)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from helpers import blobs
from reliability.checks import save_model

from utom_core.device import native_bf16
from utom_core.inference import PredictOptions, Predictor
from utom_core.inference import predictor as predictor_module
from utom_core.io import read_image
from utom_core.plugins import get_registry
from utom_core.trained import load_model
from utom_tasks.denoise import TASK

PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


@pytest.mark.parametrize("found", [(False, False), (True, False), (False, True)])
def test_a_cpu_is_native_when_a_probe_says_so(monkeypatch, found):
    for probe, value in zip(PROBES, found, strict=True):
        monkeypatch.setattr(torch.cpu, probe, lambda value=value: value, raising=False)
    assert native_bf16(torch.device("cpu")) is any(found)


def test_no_probe_no_cuda_or_another_device_is_not_native(monkeypatch):
    for probe in PROBES:
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    assert native_bf16(torch.device("cpu")) is False  # an older torch: no probes, no bf16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16(torch.device("cuda")) is False
    assert native_bf16(torch.device("meta")) is False


@pytest.fixture
def denoise_model(tmp_path):
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    image = tmp_path / "in.tif"
    rng = np.random.default_rng(0)
    noisy = 1000 + 15000 * blobs(rng, 160) + rng.normal(0, 1500, (160, 160))
    tifffile.imwrite(image, noisy.clip(0, 65535).astype(np.uint16))
    return run, image


def test_bf16_is_on_where_native_and_off_with_no_amp(denoise_model, monkeypatch):
    model = load_model(denoise_model[0], build_generator=get_registry().build_generator)
    assert Predictor(model, PredictOptions(amp=True))._tiles.bf16 is native_bf16(
        torch.device("cpu"))
    assert Predictor(model)._tiles.bf16 is False  # fp32 unless asked
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: False)
    assert Predictor(model, PredictOptions(amp=True))._tiles.bf16 is False  # never emulated


def test_no_amp_is_fp32_and_amp_stays_close(cli, denoise_model, tmp_path, monkeypatch):
    """The default (--no-amp) writes exactly what a CPU without bf16 writes (the fp32 path);
    --amp differs from it, where bf16 is native, by less than 1 % of the output's range."""
    run, image = denoise_model

    def predict(name: str, *options: str) -> np.ndarray:
        result = cli("predict", run, image, "--out", tmp_path / name, "--tile", "64", *options)
        assert result.code == 0, result.err
        return read_image(tmp_path / name / "in.tif").astype(np.float64)

    amp, no_amp = predict("amp", "--amp"), predict("no-amp")
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: False)
    fp32 = predict("fp32")
    assert np.array_equal(no_amp, fp32)
    if native_bf16(torch.device("cpu")):
        assert not np.array_equal(amp, fp32)  # bf16 did run
    span = 20000 - 100  # the model's output range (save_model's normalisation)
    assert np.abs(amp - fp32).max() < 0.01 * span  # measured here: 120 of 19900
    mse = np.mean((amp - fp32) ** 2)
    assert mse == 0 or 10 * np.log10(65535**2 / mse) > 50  # PSNR over the uint16 range


@pytest.mark.parametrize("amp", ["true", "false"])
def test_utom_run_predicts_in_fp32_whatever_its_training_amp(cli, tmp_path, monkeypatch, amp):
    """`utom run` predicts in fp32 whatever its training's `amp` (a prediction equals the model
    package's and keeps 16-bit precision)."""
    from utom_core.workflow import end_to_end

    used: list[PredictOptions] = []

    class Recorded(Predictor):
        def __init__(self, model, options=None, **kwargs) -> None:
            used.append(options)
            super().__init__(model, options, **kwargs)

    monkeypatch.setattr(end_to_end, "Predictor", Recorded)
    done = cli("run", "denoise", "--budget", "smoke", "--iterations", "2", "--set",
               f"amp={amp}", "--out", tmp_path / "out")
    assert done.code == 0, done.err
    assert [options.amp for options in used] == [False]


def test_sampled_statistics_are_recorded_as_the_tiles_run(denoise_model):
    """Tiles under bf16 normalise with statistics recorded under the same autocast, at bf16's
    cost: the first norm's, of a convolution's output only, equal those of a bf16 pass
    exactly, not the fp32 pass's (deeper norms differ from a plain pass by more than
    precision: its norms are per image, not pooled and frozen). The caller asks for bf16 only
    where it is native; here it is forced, emulated where it must be, on any CPU."""
    from utom_core.inference.view_statistics import instance_norms
    from utom_core.networks import frozen_norm_statistics

    generator = load_model(denoise_model[0], build_generator=get_registry().build_generator
                           ).generator
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, 1, 64, 64))).float()
    first = instance_norms(generator)[0]

    def recorded(bf16: bool) -> torch.Tensor:
        with frozen_norm_statistics(generator, x, bf16):
            assert first.frozen is not None
            return torch.cat(first.frozen)

    seen: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(lambda norm, args: seen.append(torch.cat(
        torch.var_mean(args[0].float(), dim=(0, 2, 3), keepdim=True, correction=0)[::-1])))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        generator(x)
    hook.remove()
    assert torch.equal(recorded(True), seen[0])
    assert not torch.equal(recorded(False), seen[0])
