"""Streaming tiled prediction: exact for the identity, equal to whole-image inference, lazy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import Identity, Memory, predict_array, whole_image

from utom_core.domain import Normalisation
from utom_core.errors import InputError
from utom_core.inference import Norm, TileOptions, output_info, predict_image
from utom_core.inference.planes import sample_windows
from utom_core.inference.tiling import Stitch
from utom_core.io import open_image, writer_for
from utom_core.networks import ResnetGenerator, frozen_norm_statistics
from utom_core.task import Slicing


def _full_range(dtype: str, channels: int) -> Normalisation:
    high = 255.0 if dtype == "uint8" else 65535.0
    return Normalisation(low=(0.0,) * channels, high=(high,) * channels, dtype=dtype)


@pytest.mark.parametrize("stitch", list(Stitch))
@pytest.mark.parametrize(("shape", "dtype"), [
    ((1, 97, 131), "uint16"), ((3, 50, 41), "uint8"), ((1, 1, 200), "uint16"),
    ((2, 5, 37, 29), "uint16"),
])
def test_identity_prediction_is_exact(shape, dtype, stitch):
    rng = np.random.default_rng(0)
    data = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    out = predict_array(data, Identity(shape[0]), _full_range(dtype, shape[0]), tile=32,
                   overlap=0.25, stitch=stitch, batch=3)
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out, data)


def test_identity_isotropic_xz_yz_planes_average_back_to_input():
    data = np.random.default_rng(0).integers(0, 65535, (1, 9, 70, 66), dtype=np.uint16)
    out = predict_array(data, Identity(1), _full_range("uint16", 1), tile=32,
                   slicing=Slicing.xz_yz)
    np.testing.assert_array_equal(out, data)


@pytest.fixture(scope="module")
def resnet() -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(1, 2, ngf=8, n_blocks=1).eval()


@pytest.mark.parametrize("stitch", list(Stitch))
def test_tiles_with_frozen_statistics_equal_whole_image_inference(resnet, stitch):
    unit = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    # crop keeps overlap/2 from inner tile edges, blend overlap/4: both must reach the radius
    tile, margin = (96, 2) if stitch is Stitch.crop else (128, 4)
    overlap = margin * resnet.receptive_radius / tile + 0.01
    with frozen_norm_statistics(resnet, torch.from_numpy(data[None])):  # whole-image statistics
        out = predict_array(data, resnet, unit, Normalisation(low=(-1.0,) * 2, high=(1.0,) * 2,
                                                         dtype="float32"),
                       tile=tile, overlap=overlap, stitch=stitch, norm=Norm.tile, batch=2)
    np.testing.assert_allclose(out, whole_image(resnet, data), atol=1e-4)


def test_plane_that_fits_one_batch_is_predictedwhole_image(resnet):
    unit = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    out = predict_array(data, resnet, unit, Normalisation(low=(-1.0,) * 2, high=(1.0,) * 2,
                                                     dtype="float32"),
                   tile=96, overlap=0.0)  # the plane has less than 4 tiles of 96²
    np.testing.assert_allclose(out, whole_image(resnet, data), atol=1e-5)


def test_per_tile_norm_differs_from_whole_image(resnet):
    unit = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    data[:, :100] *= 0.1  # tiles differ in contrast: their own statistics differ
    out = predict_array(data, resnet, unit, Normalisation(low=(-1.0,) * 2, high=(1.0,) * 2,
                                                     dtype="float32"),
                   tile=96, overlap=0.5, norm=Norm.tile)
    assert np.abs(out - whole_image(resnet, data)).max() > 1e-2


def test_sampled_reference_for_planes_over_the_budget(resnet):
    unit = Normalisation(low=(-1.0,), high=(1.0,), dtype="float32")
    data = np.random.default_rng(1).uniform(-1, 1, (1, 200, 152)).astype(np.float32)
    source = Memory(data)
    sink = Memory(np.zeros((2, 200, 152), np.float32))
    predict_image(source, resnet, unit, Normalisation(low=(-1.0,) * 2, high=(1.0,) * 2,
                                                      dtype="float32"), sink,
                  TileOptions(tile=64, max_pixels=2000))
    crops = [region for _, region in source.log[:6]]
    assert all(r.stop - r.start == 16 for region in crops for r in region)  # tile/4 crops
    assert len({(r[0].start, r[1].start) for r in crops}) == 6  # spread over the plane
    assert np.isfinite(sink.data).all() and np.abs(sink.data).max() <= 1.0


def test_sample_windows_at_grid_centres():
    windows = sample_windows((1000, 1000), 4 * 64 * 64, 64, 4)
    assert len(windows) == 4
    assert sorted({w[0].start for w in windows}) == [218, 718]  # centred in 2 × 2 cells


def test_frozen_statistics_of_one_image_equal_its_own_statistics(resnet):
    x = torch.from_numpy(np.random.default_rng(3).uniform(-1, 1, (1, 1, 64, 48)).astype(
        np.float32))
    with torch.no_grad():
        own = resnet(x)
    with frozen_norm_statistics(resnet, x), torch.no_grad():
        frozen = resnet(x)
    np.testing.assert_allclose(frozen.numpy(), own.numpy(), atol=1e-5)
    assert all(m.frozen is None for m in resnet.modules() if hasattr(m, "frozen"))


def test_streaming_reads_one_tile_row_and_writes_before_the_end():
    data = np.random.default_rng(0).integers(0, 65535, (1, 300, 90), dtype=np.uint16)
    source, sink = Memory(data), Memory(np.zeros_like(data))
    log: list[str] = []
    source.log = sink.log = log  # one shared, ordered log of reads and writes
    predict_image(source, Identity(1), _full_range("uint16", 1), _full_range("uint16", 1), sink,
                  TileOptions(tile=64, norm=Norm.tile))
    reads = [region for kind, region in log if kind == "read"]
    assert max(r[0].stop - r[0].start for r in reads) <= 64
    first_write = next(i for i, (kind, _) in enumerate(log) if kind == "write")
    assert first_write < len(log) // 2  # rows leave as soon as they are final


def test_wrong_channel_count_names_file_expected_and_found():
    source = Memory(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"memory.tif: expected 1 channel\(s\), found 3"):
        predict_image(source, Identity(1), _full_range("uint8", 1), _full_range("uint8", 1),
                      Memory(np.zeros((1, 8, 8), np.uint8)))


def test_files_in_files_out_keep_pixel_size(tmp_path, resnet):
    import tifffile

    data = np.random.default_rng(2).integers(0, 4000, (1, 70, 90), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", data[0], imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um"})
    source = open_image(tmp_path / "in.tif")
    norm_in = Normalisation(low=(0.0,), high=(4000.0,), dtype="uint16")
    norm_out = Normalisation(low=(0.0,) * 2, high=(255.0,) * 2, dtype="uint8")
    info = output_info(source.info, 2, "uint8")
    sink = writer_for(tmp_path / "out.ome.zarr").create(tmp_path / "out.ome.zarr", info, 32)
    predict_image(source, resnet, norm_in, norm_out, sink, TileOptions(tile=32))
    sink.commit()
    out = open_image(tmp_path / "out.ome.zarr")
    assert out.info.shape == (2, 70, 90) and out.info.dtype == np.uint8
    assert out.info.pixel_size == pytest.approx({"x": 0.5, "y": 0.5})
