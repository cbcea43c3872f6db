"""Test-time views: flips and rotations undone and averaged, in the one tile runner."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from helpers import Identity, predict_array, whole_image

from utom_core.domain import Normalisation
from utom_core.inference import TileOptions, planes
from utom_core.inference.tiling import Stitch
from utom_core.inference.view_statistics import instance_norms
from utom_core.inference.views import dihedral
from utom_core.networks import ResnetGenerator
from utom_core.networks.base import Generator
from utom_core.task import Slicing

UNIT = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")


class Conv(Generator):
    """A fixed 3×3 convolution (zero padding): equivariant to a transform only if its kernel
    is."""

    def __init__(self, kernel: np.ndarray) -> None:
        super().__init__()
        self.in_channels = self.out_channels = 1
        self.register_buffer("kernel", torch.tensor(kernel, dtype=torch.float32)[None, None])

    @property
    def receptive_radius(self) -> int:
        return 1

    @property
    def size_multiple(self) -> int:
        return 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.kernel, padding=1)


ASYMMETRIC = np.array([[0.0, 0.1, 0.0], [0.3, 0.2, 0.0], [0.0, 0.0, 0.4]])
VERTICAL = np.array([[0.0, 0.25, 0.0], [0.0, 0.5, 0.0], [0.0, 0.25, 0.0]])
"""Symmetric under flips, not under a transpose (it would blur along rows instead)."""


def _dihedral_numpy(plane: np.ndarray, predict) -> np.ndarray:
    """The mean over the 8 transforms of the square, written independently with numpy."""
    outs = []
    for turns in range(4):
        for mirror in (False, True):
            seen = np.rot90(plane, turns)
            seen = seen[:, ::-1] if mirror else seen
            out = predict(np.ascontiguousarray(seen))  # (…, H, W)
            out = out[..., ::-1] if mirror else out
            outs.append(np.rot90(out, -turns, axes=(-2, -1)))
    return np.mean(outs, axis=0)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_identity_under_views_returns_the_input_exactly(views):
    data = np.random.default_rng(0).integers(0, 65535, (2, 52, 37), dtype=np.uint16)
    full = Normalisation(low=(0.0,) * 2, high=(65535.0,) * 2, dtype="uint16")
    out = predict_array(data, Identity(2), full, tile=32, overlap=0.25, views=views)
    np.testing.assert_array_equal(out, data)


def test_views_average_the_undone_predictions_of_a_non_equivariant_generator():
    generator = Conv(ASYMMETRIC)
    data = np.random.default_rng(1).uniform(-1, 1, (1, 32, 40)).astype(np.float32)
    out = predict_array(data, generator, UNIT, views=8)[0]  # predicted whole
    expected = _dihedral_numpy(data[0], lambda p: whole_image(generator, p[None])[0])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.abs(out - predict_array(data, generator, UNIT, views=1)[0]).max() > 0.05


@pytest.mark.parametrize("stitch", list(Stitch))
def test_tiles_with_views_equal_whole_image_with_views(stitch, monkeypatch):
    """Each view's norm statistics are frozen for all tiles (here from the whole plane, the
    sample taken as everything), so tiles equal whole-plane prediction view by view."""
    torch.manual_seed(0)
    resnet = ResnetGenerator(1, 2, ngf=8, n_blocks=1).eval()
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    monkeypatch.setattr(planes, "sample_windows",
                        lambda shape, *_: [(slice(0, shape[0]), slice(0, shape[1]))])
    tile, margin = (96, 2) if stitch is Stitch.crop else (128, 4)
    overlap = margin * resnet.receptive_radius / tile + 0.01
    out = predict_array(data, resnet, UNIT, Normalisation(low=(-1.0,) * 2, high=(1.0,) * 2,
                                                          dtype="float32"),
                        tile=tile, overlap=overlap, stitch=stitch, max_pixels=tile**2, batch=2,
                        views=8)
    expected = _dihedral_numpy(data[0], lambda p: whole_image(resnet, p[None]))
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert all(norm.frozen is None for norm in instance_norms(resnet))


def test_xz_yz_planes_are_never_transposed():
    generator = Conv(VERTICAL)  # blurs along z in XZ/YZ planes, along y in XY planes
    volume = np.random.default_rng(2).uniform(-1, 1, (1, 12, 20, 24)).astype(np.float32)
    one, eight = (predict_array(volume, generator, UNIT, tile=64, slicing=Slicing.xz_yz,
                                views=v) for v in (1, 8))
    np.testing.assert_allclose(eight, one, atol=1e-6)
    plane = volume[:, 0]  # the same generator on an XY plane: transposed views do change it
    assert np.abs(predict_array(plane, generator, UNIT, views=8)
                  - predict_array(plane, generator, UNIT, views=1)).max() > 0.05


def test_view_sets():
    assert [len(dihedral(n)) for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    assert not any(v.transpose for v in dihedral(8, axial=True))
    assert len(set(dihedral(8))) == 8
    assert TileOptions().views == 1  # the plain tile runner predicts once


def test_views_is_an_option_of_predict_and_run(cli):
    for command in ("predict", "run"):
        assert "--views [1|2|4|8]" in cli(command, "--help").out
    refused = cli("predict", "run", "x.tif", "--out", "o", "--views", "3")
    assert refused.code != 0 and "--views" in refused.err


def test_utom_predict_gives_xz_yz_models_four_views_and_says_so(cli, tmp_path):
    from reliability.checks import save_model

    from utom_tasks.isotropic import TASK

    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "isotropic",
                     Slicing.xz_yz)
    volume = np.random.default_rng(3).integers(0, 20000, (12, 24, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "vol.tif", volume, imagej=True, metadata={"axes": "ZYX"})
    outs = []
    for views in ("8", "4"):
        result = cli("predict", run, tmp_path / "vol.tif", "--out", tmp_path / f"{views}.tif",
                     "--views", views)
        assert result.code == 0, result.err
        assert ("4 views" in result.err) == (views == "8")
        outs.append(tifffile.imread(tmp_path / f"{views}.tif"))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_a_cluster_jobs_identity_includes_the_views(tmp_path):
    """``--resume`` of a --scheduler job started with other views starts over."""
    from utom_core.inference.blocks import ModelSpec
    from utom_core.inference.job_records import job_identity
    from utom_core.io.base import ImageInfo

    image = tmp_path / "in.tif"
    image.write_bytes(b"x")
    model = SimpleNamespace(generator=Identity(1), source_norm=UNIT, output_norm=UNIT)
    identity = [job_identity(image, ImageInfo((1, 8, 8), np.dtype("uint16")),
                             ModelSpec("m", "a2b", True, "cpu", TileOptions(views=views),
                                       print), model)  # type: ignore[arg-type]
                for views in (1, 8)]
    assert identity[0]["options"]["views"] == 1 and identity[0] != identity[1]
