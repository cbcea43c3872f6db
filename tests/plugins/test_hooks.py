"""Every hook has a test: toy third-party plugins, registered in-process, used through the CLI.

``test_every_hook_has_a_test`` fails when a hook is added to ``utom_core.hookspecs`` without a
``test_hook_<name>`` here (as ``tests/project/test_docs.py`` fails when it is not documented).
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from helpers import blobs, hook_functions

from utom_core import plugins
from utom_core.domain import Domain
from utom_core.evaluation.base import Evaluator, Sample
from utom_core.hookspecs import hookimpl
from utom_core.io.atomic import move_into_place, remove, temporary_sibling
from utom_core.io.base import ImageInfo
from utom_core.networks import Generator
from utom_core.task import Task

TINY = ("--budget", "smoke", "--set", "sample_pixels=5000", "--set", "n_blocks=1",
        "--set", "d_layers=2", "--set", "preview_every=1000")


@pytest.fixture
def plugin() -> Iterator[Callable[..., types.ModuleType]]:
    """Register a module built from hook implementations; unregistered afterwards."""
    added: list[types.ModuleType] = []

    def register(**hooks: Callable) -> types.ModuleType:
        module = types.ModuleType(f"toy_plugin_{len(added)}")
        for name, function in hooks.items():
            setattr(module, name, hookimpl(function))
        plugins.add_plugin(module)
        added.append(module)
        return module

    yield register
    for module in added:
        plugins.remove_plugin(module)


@pytest.mark.parametrize("hook", sorted(hook_functions()))
def test_every_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in globals(), f"hook {hook} has no test_hook_{hook}"


def _tiffs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {}
    for name, noise in (("a", 1500), ("b", 0), ("test", 1500)):
        image = 1000 + 20000 * blobs(rng, 64) + rng.normal(0, noise or 1e-9, (64, 64))
        paths[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(paths[name], image.clip(0, 65535).astype(np.uint16))
    return paths


def _train(cli, tmp_path: Path, *extra: str) -> Path:
    paths, run = _tiffs(tmp_path), tmp_path / "run"
    result = cli("train", "denoise", "--a", paths["a"], "--b", paths["b"], "--out", run, *TINY,
                 *extra)
    assert result.code == 0, result.err
    return run


def test_hook_register_tasks(cli, plugin):
    task = Task(name="toy-task", summary="a toy task from a third-party plugin",
                domain_a=Domain(name="toy-in", channels=2), domain_b=Domain(name="toy-out",
                                                                            channels=1))
    plugin(register_tasks=lambda register: register(task))
    result = cli("tasks")
    assert result.code == 0, result.err
    assert "toy-task" in result.out and "2 → 1" in result.out


class ToyConv(Generator):
    """One 3×3 convolution and tanh: the smallest network the Generator interface allows."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1,
                                    padding_mode="reflect")

    @property
    def receptive_radius(self) -> int:
        return 1

    @property
    def size_multiple(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


def test_hook_register_generators(cli, plugin, tmp_path):
    plugin(register_generators=lambda register: register(
        "toy-conv", lambda i, o, cfg: ToyConv(i, o)))
    paths = _tiffs(tmp_path)
    refused = cli("train", "denoise", "--a", paths["a"], "--b", paths["b"], "--out",
                  tmp_path / "no", *TINY, "--set", "generator=toy-conv")
    assert refused.code != 0 and "does not keep the input's low frequencies" in refused.err
    refused = cli("train", "denoise", "--a", paths["a"], "--b", paths["b"], "--out",
                  tmp_path / "no", *TINY, "--set", "generator=toy-conv", "--set",
                  "anchor_sigma=0", "--set", "lattice_notch=6")
    assert refused.code != 0 and "as lattice_notch=6 asks; set lattice_notch=0" in refused.err
    run = _train(cli, tmp_path, "--set", "generator=toy-conv", "--set", "anchor_sigma=0")
    state = torch.load(run / "model.pt", weights_only=True)
    assert set(state["g_ab"]) == {"conv.weight", "conv.bias"}
    result = cli("predict", run, tmp_path / "test.tif", "--out", tmp_path / "out.tif")
    assert result.code == 0, result.err
    assert tifffile.imread(tmp_path / "out.tif").shape == (64, 64)


class NpySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.array = np.load(path, mmap_mode="r")
        self.info = ImageInfo(self.array.shape, self.array.dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.array[(slice(None), *region)])

    def close(self) -> None:
        del self.array


class NpyReader:
    """Reads ``.npy`` arrays stored channels first, (C, Y, X)."""

    name, suffixes = "toy-npy", (".npy",)

    def open(self, path: Path) -> NpySource:
        return NpySource(path)


class NpySink:
    def __init__(self, path: Path, info: ImageInfo) -> None:
        self.path, self.partial = path, temporary_sibling(path)
        self.array = np.lib.format.open_memmap(self.partial, "w+", info.dtype, info.shape)

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.array[(slice(None), *region)] = data

    def commit(self, replace: bool = False) -> None:
        self.array.flush()
        move_into_place(self.partial, self.path, replace)

    def abort(self) -> None:
        remove(self.partial)


class NpyWriter:
    name, suffixes = "toy-npy", (".npy",)

    def create(self, path: Path, info: ImageInfo, chunk: int = 512) -> NpySink:
        return NpySink(path, info)


def test_hook_register_readers(cli, plugin, tmp_path):
    run = _train(cli, tmp_path)
    plugin(register_readers=lambda register: register(NpyReader()))
    np.save(tmp_path / "test.npy", tifffile.imread(tmp_path / "test.tif")[None])
    result = cli("predict", run, tmp_path / "test.npy", "--out", tmp_path / "from_npy.tif")
    assert result.code == 0, result.err
    reference = cli("predict", run, tmp_path / "test.tif", "--out", tmp_path / "from_tif.tif")
    assert reference.code == 0, reference.err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "from_npy.tif"),
                                  tifffile.imread(tmp_path / "from_tif.tif"))


def test_hook_register_writers(cli, plugin, tmp_path):
    run = _train(cli, tmp_path)
    plugin(register_writers=lambda register: register(NpyWriter()))
    for out in ("out.npy", "out.tif"):
        result = cli("predict", run, tmp_path / "test.tif", "--out", tmp_path / out)
        assert result.code == 0, result.err
    written = np.load(tmp_path / "out.npy")
    assert written.shape == (1, 64, 64) and written.dtype == np.uint16
    np.testing.assert_array_equal(written[0], tifffile.imread(tmp_path / "out.tif"))


class ToyMean(Evaluator):
    """The mean of the prediction on the [-1, 1] scale."""

    name = "toy-mean"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        return {"toy_mean": float(sample.prediction.mean())}


def test_hook_register_evaluators(cli, plugin, tmp_path):
    from utom_tasks.denoise import TASK as DENOISE

    task = DENOISE.model_copy(update={"name": "toy-eval", "demo_data": None,
                                      "evaluators": ["toy-mean", "psnr"]})
    plugin(register_tasks=lambda register: register(task),
           register_evaluators=lambda register: register(ToyMean()))
    paths, out = _tiffs(tmp_path), tmp_path / "out"
    result = cli("run", "toy-eval", "--a", paths["a"], "--b", paths["b"], "--test",
                 paths["test"], "--reference", paths["b"], "--out", out, *TINY)
    assert result.code == 0, result.err
    record = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "run" / "run.json").read_text())
    prediction = tifffile.imread(record["images"][0]["prediction"]).astype(np.float64)
    low, high = meta["normalisation_b"]["low"][0], meta["normalisation_b"]["high"][0]
    expected = np.clip(2 * (prediction - low) / (high - low) - 1, -1, 1).mean()
    assert record["metrics"]["toy_mean"] == pytest.approx(expected, abs=1e-5)
    assert "psnr" in record["metrics"]


def test_hook_register_methods(cli, plugin, tmp_path):
    from methods.toy_method import L1ToInput

    plugin(register_methods=lambda register: register(L1ToInput()))
    listed = cli("methods")
    assert "toy-l1" in listed.out and "LSGAN + L1 to the input" in listed.out
    run = _train(cli, tmp_path, "--method", "toy-l1")
    last = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert {"gan_ab", "l1_a", "generator", "disc_b"} <= set(last)
    assert json.loads((run / "config.json").read_text())["method"] == "toy-l1"
