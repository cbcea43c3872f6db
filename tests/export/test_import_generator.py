"""``utom import-generator``: state dicts of the authors' code, in every classic layout, give the
same outputs in utom; a file of another layout is refused naming the first key that differs;
the run it writes predicts in their 8-bit intensities."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from export.classic_layout import ClassicResnet, ClassicUnet, randomised
from export.offline_run import run_offline
from helpers import build_generator
from PIL import Image
from reliability.checks import one_line_error, snapshot

from utom_core.export.authors import load_authors_generator

VARIANTS = {
    "resnet_6blocks": (lambda: ClassicResnet(1, 3, 4, 6), 32),
    "resnet_9blocks-batch": (lambda: ClassicResnet(3, 3, 4, 9, "batch"), 32),
    "resnet_9blocks-dropout": (lambda: ClassicResnet(1, 1, 4, 9, dropout=True), 36),
    "unet_128": (lambda: ClassicUnet(1, 3, 2, 7), 128),
    "unet_256-batch": (lambda: ClassicUnet(3, 1, 2, 8, "batch"), 256),
    "unet_256-dropout": (lambda: ClassicUnet(1, 1, 2, 8, dropout=True), 256),
}


def _saved(tmp_path: Path, net: torch.nn.Module, prefix: str = "", name: str = "G.pth") -> Path:
    path = tmp_path / name
    torch.save({prefix + key: value for key, value in net.state_dict().items()}, path)
    return path


def _their_test(net: torch.nn.Module, batch_norm: bool) -> torch.nn.Module:
    """How their test script runs a generator: without --eval the network stays in training
    mode, so batch norm normalises with the one test image's statistics; dropout (CycleGAN
    trains without it) is left out, as in eval mode."""
    net.train(batch_norm)
    return net


@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain", "DataParallel"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_classic_layout_gives_the_same_outputs(tmp_path, variant, prefix):
    build, size = VARIANTS[variant]
    net = randomised(build(), seed=1)
    layout, generator = load_authors_generator(_saved(tmp_path, net, prefix), build_generator)
    assert layout.net_g == variant.split("-")[0]
    assert layout.batch_norm == variant.endswith("batch")
    x = torch.rand(1, layout.in_channels, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = _their_test(net, layout.batch_norm)(2 * x - 1)
        ours = generator(2 * x - 1)
    assert theirs.std() > 0.05  # outputs that depend on the weights, not saturated constants
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _resnet_state() -> dict[str, torch.Tensor]:
    return dict(ClassicResnet(1, 3, 4, 9).state_dict())


def _discriminator_state() -> dict[str, torch.Tensor]:
    d = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, 2, 1), torch.nn.LeakyReLU(0.2),
                            torch.nn.Conv2d(8, 1, 4, 1, 1))
    return dict(d.state_dict())


def _without(key: str) -> dict[str, torch.Tensor]:
    state = _resnet_state()
    del state[key]
    return state


def _renamed(old: str, new: str) -> dict[str, torch.Tensor]:
    state = _resnet_state()
    state[new] = state.pop(old)
    return state


def _reshaped(key: str) -> dict[str, torch.Tensor]:
    state = _resnet_state()
    state[key] = torch.zeros(5, *state[key].shape[1:])
    return state


@pytest.mark.parametrize("state, needles", [
    (lambda: _without("model.14.conv_block.5.weight"),
     ["resnet_9blocks", "missing key 'model.14.conv_block.5.weight'"]),
    (lambda: _renamed("model.14.conv_block.5.bias", "model.14.conv_block.5.offset"),
     ["unexpected key 'model.14.conv_block.5.offset'"]),
    (lambda: _reshaped("model.10.conv_block.1.weight"),
     ["key 'model.10.conv_block.1.weight' has shape (5, 16, 3, 3)", "(16, 16, 3, 3)"]),
    (_discriminator_state, ["neither", "'0.weight'"]),
], ids=["missing", "unexpected", "shape", "discriminator"])
def test_another_layout_is_refused_naming_the_first_mismatched_key(cli, tmp_path, state,
                                                                   needles):
    weights = tmp_path / "G.pth"
    torch.save(state(), weights)
    before = snapshot(tmp_path)
    result = cli("import-generator", weights, "--task", "stain-he", "--out", tmp_path / "run",
                 "--threshold-a", "30")
    one_line_error(result, str(weights), *needles)
    assert snapshot(tmp_path) == before


class Payload:
    """Anything that is not tensors and plain data."""


def test_a_file_that_would_run_code_is_refused(cli, tmp_path):
    weights = tmp_path / "G.pth"
    torch.save({"model.1.weight": torch.zeros(1), "hook": Payload()}, weights)
    one_line_error(cli("import-generator", weights, "--task", "stain-he", "--out",
                       tmp_path / "run", "--threshold-a", "30"), "refused", "Payload")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_imported_run_predicts_their_8_bit_intensities_and_exports(tmp_path):
    """G_A of stain-he (1 → 3 channels) saved through DataParallel: ``utom predict`` gives
    what their test script writes, ``(G(x / 127.5 - 1) + 1) / 2 · 255``, rounded."""
    net = randomised(ClassicResnet(1, 3, 4, 6), seed=4)
    weights = _saved(tmp_path, net, "module.", "latest_net_G_A.pth")
    run = tmp_path / "run"
    done = run_offline(tmp_path, "import-generator", weights, "--task", "stain-he", "--out", run,
                       "--threshold-a", "30")
    assert done.returncode == 0, done.stderr
    assert "resnet_6blocks, ngf 4, instance norm" in done.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["normalisation_a"] == {"low": [0.0], "high": [255.0], "dtype": "uint8"}
    assert meta["normalisation_b"]["high"] == [255.0] * 3
    assert (meta["threshold_a"], meta["threshold_b"]) == (30.0, 220.0)  # B: the task's 8-bit

    rng = np.random.default_rng(5)
    image = (rng.random((160, 144)) * 255).astype(np.uint8)  # holds the export's test input
    Image.fromarray(image).save(tmp_path / "af.png")
    done = run_offline(tmp_path, "predict", run, tmp_path / "af.png", "--out",
                       tmp_path / "he.tif", "--views", "1")  # their code predicts one view
    assert done.returncode == 0, done.stderr
    ours = tifffile.imread(tmp_path / "he.tif")
    with torch.no_grad():
        x = torch.from_numpy(image.astype(np.float32) / 127.5 - 1)[None, None]
        theirs = ((net.eval()(x)[0].numpy() + 1) / 2 * 255).transpose(1, 2, 0)
    ours = ours if ours.shape == theirs.shape else np.moveaxis(ours, 0, -1)
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    assert np.abs(ours.astype(float) - theirs).max() <= 0.5 + 1e-3
    # their tensor2im truncates where utom rounds: at most one level apart
    assert np.abs(ours.astype(int) - theirs.astype(np.uint8).astype(int)).max() <= 1

    done = run_offline(tmp_path, "export", run, "--bioimageio", tmp_path / "he.zip",
                       "--sample", tmp_path / "af.png")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "he.zip") as package:
        readme = package.read("README.md").decode()
    assert "imported by `utom import-generator` from `latest_net_G_A.pth`" in readme
    assert "resnet_6blocks, ngf 4, instance norm" in readme


def test_thresholds_default_to_their_code(cli, tmp_path):
    """Their ``threshold_A 70``, ``threshold_B 220`` where the task has no 8-bit one (stain-he's
    autofluorescence is 16-bit; its H&E side is 8-bit, 220)."""
    weights = _saved(tmp_path, ClassicResnet(1, 3, 4, 6))
    assert cli("import-generator", weights, "--task", "stain-he", "--out",
               tmp_path / "he").code == 0
    assert cli("import-generator", _saved(tmp_path, ClassicResnet(1, 1, 4, 6), name="d.pth"),
               "--task", "denoise", "--out", tmp_path / "dn").code == 0
    he = json.loads((tmp_path / "he" / "run.json").read_text())
    dn = json.loads((tmp_path / "dn" / "run.json").read_text())
    assert (he["threshold_a"], he["threshold_b"]) == (70.0, 220.0)
    assert (dn["threshold_a"], dn["threshold_b"]) == (70.0, 220.0)


def _blocks(n: int, ngf: int = 4, claimed: bool = False) -> dict[str, object]:
    """The deciding keys of a resnet_{n}blocks generator (nothing else); ``claimed``: every
    weight a stride-0 view of one number, so the file stays tiny whatever the shapes say."""
    def tensor(*shape: int) -> torch.Tensor:
        return torch.zeros(1).expand(*shape) if claimed else torch.zeros(*shape)
    return {"model.1.weight": tensor(ngf, 1, 7, 7),
            **{f"model.{10 + i}.conv_block.1.weight": tensor(4 * ngf, 4 * ngf, 3, 3)
               for i in range(n)},
            f"model.{17 + n}.weight": tensor(3, ngf, 7, 7)}


@pytest.mark.parametrize("state, needles", [
    (lambda: {**_resnet_state(), 7: torch.zeros(1)}, ["mapping of names to tensors"]),
    (lambda: {**_resnet_state(), "model.1.weight": torch.zeros(4)},
     ["'model.1.weight'", "shape (4,)", "4-D"]),
    (lambda: _blocks(40), ["n_blocks", "32"]),
    (lambda: _blocks(32, ngf=512, claimed=True), ["claims shape", "holds 1 number"]),
    (lambda: {"model.1.weight": torch.zeros(512, 1, 7, 7),  # claims ngf 512, 32 blocks
              "model.41.conv_block.1.weight": torch.zeros(1, 1, 1, 1),
              "model.49.weight": torch.zeros(3, 512, 7, 7)}, ["resnet_32blocks", "key"]),
], ids=["non-string key", "1-D weight", "too many blocks", "stride-0 giant", "huge layout"])
def test_a_crafted_state_dict_is_refused_before_any_network_is_built(cli, tmp_path, state,
                                                                     needles):
    """Checked from the file's keys and shapes alone: a tiny file claiming a network of many
    gigabytes is refused without allocating it (the peak memory barely moves)."""
    import resource

    weights = tmp_path / "G.pth"
    torch.save(state(), weights)
    before = snapshot(tmp_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = cli("import-generator", weights, "--task", "stain-he", "--out", tmp_path / "run")
    one_line_error(result, str(weights), *needles)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 2**20  # KiB: < 1 GiB
    assert snapshot(tmp_path) == before


def test_import_refusals_are_one_line_and_write_nothing(cli, tmp_path):
    gray_to_gray = _saved(tmp_path, ClassicResnet(1, 1, 4, 6))
    run = tmp_path / "run"
    before = snapshot(tmp_path)
    one_line_error(cli("import-generator", gray_to_gray, "--task", "stain-he", "--out", run,
                       "--threshold-a", "30"), "maps 1 → 1", "needs 1 → 3")
    one_line_error(cli("import-generator", gray_to_gray, "--task", "denoise", "--out", run,
                       "--threshold-a", "300", "--threshold-b", "9"), "--threshold-a", "0–255")
    one_line_error(cli("import-generator", tmp_path / "none.pth", "--task", "denoise", "--out",
                       run, "--threshold-a", "9", "--threshold-b", "9"), "none.pth", "no such")
    assert snapshot(tmp_path) == before
    args = ["import-generator", gray_to_gray, "--task", "denoise", "--out", run,
            "--threshold-a", "9", "--threshold-b", "12"]
    assert cli(*args).code == 0
    kept = snapshot(run)
    one_line_error(cli(*args), str(run), "already exists")
    assert snapshot(run) == kept
    assert cli(*args, "--overwrite").code == 0
    assert json.loads((run / "run.json").read_text())["threshold_b"] == 12.0
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "b.png")
    one_line_error(cli("predict", run, tmp_path / "b.png", "--out", tmp_path / "x.tif",
                       "--direction", "b2a"), "no B → A generator")  # only the imported one


def test_tiles_of_an_imported_batch_norm_generator_share_the_image_statistics(tmp_path):
    """utom predict freezes norm statistics for tiles; with the scale and shift batch norm
    brings, frozen statistics of the image itself give the whole-image output."""
    from utom_core.networks.norm import frozen_norm_statistics

    net = randomised(ClassicResnet(1, 1, 4, 6, "batch"), seed=6)
    _, generator = load_authors_generator(_saved(tmp_path, net), build_generator)
    x = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        whole = generator(x)
        with frozen_norm_statistics(generator, x):
            frozen = generator(x)
    torch.testing.assert_close(frozen, whole, rtol=1e-4, atol=1e-5)
