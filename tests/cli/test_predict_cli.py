"""``utom predict`` end to end on a hand-made run: formats, folders, refusals, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.domain import Domain, Normalisation
from utom_core.io import open_image
from utom_core.plugins import get_registry

HE = Domain(name="he", channels=3, dtype="uint8", background="bright")
AF = Domain(name="af", channels=1, dtype="uint16")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with a small random AF (uint16, 1 channel) ↔ H&E (RGB uint8) model."""
    path = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(ngf=4, n_blocks=1)
    torch.manual_seed(0)
    registry = get_registry()
    g_ab, g_ba = registry.build_generator(cfg, 1, 3), registry.build_generator(cfg, 3, 1)
    meta = trained.RunMeta(
        task="stain-he", domain_a=AF, domain_b=HE, images_per_epoch=1,
        normalisation_a=Normalisation(low=(100.0,), high=(4000.0,), dtype="uint16"),
        normalisation_b=Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype="uint8"),
        threshold_a=500.0, threshold_b=200.0)
    save_torch(dict(
        format=trained.MODEL_FORMAT, config=cfg.model_dump(mode="json"),
        meta=meta.model_dump(mode="json"), g_ab=g_ab.state_dict(), g_ba=g_ba.state_dict(),
        ema_ab=g_ab.state_dict(), ema_ba=g_ba.state_dict(), iteration=1), path / trained.MODEL_FILE)
    return path


@pytest.fixture
def af_image(tmp_path):
    data = np.random.default_rng(0).integers(0, 5000, (75, 90), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "af.tif", data, imagej=True, resolution=(4.0, 4.0),
                     metadata={"unit": "um"})
    return tmp_path / "af.tif"


def test_predict_to_tiff_keeps_pixel_size_and_target_type(cli, run_dir, af_image, tmp_path):
    result = cli("predict", run_dir, af_image, "--out", tmp_path / "he.tif", "--tile", "32")
    assert result.code == 0, result.err
    out = open_image(tmp_path / "he.tif")
    assert out.info.shape == (3, 75, 90) and out.info.dtype == np.uint8
    assert out.info.pixel_size == pytest.approx({"x": 0.25, "y": 0.25})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_several_inputs_go_to_a_folder_as_ome_zarr(cli, run_dir, af_image, tmp_path):
    second = tmp_path / "more" / "af2.ome.tif"
    second.parent.mkdir()
    tifffile.imwrite(second, np.full((40, 40), 900, np.uint16))
    result = cli("predict", run_dir, af_image, second.parent, "--out", tmp_path / "out",
                 "--format", "zarr", "--stitch", "blend", "--norm", "tile", "--batch", "2")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["af.ome.zarr",
                                                                    "af2.ome.zarr"]
    meta = json.loads((tmp_path / "out" / "af.ome.zarr" / "zarr.json").read_text())
    assert meta["attributes"]["ome"]["version"] == "0.5"


def test_b2a_direction_writes_16_bit(cli, run_dir, tmp_path):
    tifffile.imwrite(tmp_path / "he.tif", np.zeros((30, 30, 3), np.uint8), photometric="rgb")
    result = cli("predict", run_dir, tmp_path / "he.tif", "--direction", "b2a",
                 "--out", tmp_path / "af.tif")
    assert result.code == 0, result.err
    assert open_image(tmp_path / "af.tif").info.dtype == np.uint16


def test_refuses_to_clobber_without_overwrite(cli, run_dir, af_image, tmp_path):
    tifffile.imwrite(tmp_path / "he.tif", np.zeros((8, 8), np.uint8))  # a TIFF: replaceable
    precious = (tmp_path / "he.tif").read_bytes()
    result = cli("predict", run_dir, af_image, "--out", tmp_path / "he.tif")
    assert result.code != 0 and "already exists (use --overwrite" in result.err
    assert (tmp_path / "he.tif").read_bytes() == precious
    assert cli("predict", run_dir, af_image, "--out", tmp_path / "he.tif",
               "--overwrite").code == 0
    assert open_image(tmp_path / "he.tif").info.channels == 3


def test_overwrites_an_existing_ome_zarr_output(cli, run_dir, af_image, tmp_path):
    out = tmp_path / "he.ome.zarr"
    for _ in range(2):
        assert cli("predict", run_dir, af_image, "--out", out, "--overwrite").code == 0
    assert open_image(out).info.shape == (3, 75, 90)
    assert not (out / "he.ome.zarr").exists()


def test_refuses_output_equal_to_input(cli, run_dir, af_image):
    result = cli("predict", run_dir, af_image, "--out", af_image, "--overwrite")
    assert result.code != 0 and "would overwrite its input" in result.err


def test_wrong_channels_is_one_line_error_and_leaves_nothing(cli, run_dir, tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((20, 20, 3), np.uint8), photometric="rgb")
    result = cli("predict", run_dir, tmp_path / "rgb.tif", "--out", tmp_path / "x.tif")
    assert result.code != 0
    assert "rgb.tif: expected 1 channel(s), found 3" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "x.tif").exists()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_bad_input_file_named_in_error(cli, run_dir, tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    result = cli("predict", run_dir, tmp_path / "bad.tif", "--out", tmp_path / "o.tif")
    assert result.code != 0 and "bad.tif: not a readable TIFF" in result.err
    assert "Traceback" not in result.err
