"""Outputs that viewers open, judged by independent readers: OME-Zarr 0.5 pyramids by
ome-zarr-models and ome-zarr-py, pyramidal OME-TIFF by tifffile and ome-types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from helpers import validate_ome_zarr
from ome_types import from_xml
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from utom_core.io import ImageInfo, ometiff, open_image, read_image, writer_for
from utom_core.io.pyramid import downsample

RNG = np.random.default_rng(0)
SIZE = {"x": 0.25, "y": 0.25, "z": 2.0}


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    from reliability.checks import save_model

    from utom_tasks.denoise import TASK

    return save_model(tmp_path_factory.mktemp("model"), TASK.domain_a, TASK.domain_b, "denoise")


def _write(path: Path, data: np.ndarray, chunk: int = 16, **kwargs) -> Path:
    info = ImageInfo(data.shape, data.dtype, {k: v for k, v in SIZE.items()
                                              if k != "z" or data.ndim == 4})
    sink = writer_for(path).create(path, info, chunk=chunk, **kwargs)
    sink.write(tuple(slice(0, n) for n in data.shape[1:]), data)
    sink.commit()
    return path


def _pyramid(data: np.ndarray, levels: int) -> list[np.ndarray]:
    found = [data]
    for _ in range(levels - 1):
        found.append(downsample(found[-1]))
    return found


def _canonical(data: np.ndarray, axes: str) -> np.ndarray:
    """(C, [Z], Y, X) from a TIFF level of ``axes`` (S, RGB samples, as channels)."""
    axes = axes.replace("S", "C")
    if "C" not in axes:
        data, axes = data[None], "C" + axes
    return np.transpose(data, [axes.index(a) for a in "CZYX" if a in axes])


IMAGES = {
    "16-bit 2D, odd": RNG.integers(0, 60000, (1, 71, 45)).astype(np.uint16),
    "RGB": RNG.integers(0, 255, (3, 50, 66)).astype(np.uint8),
    "16-bit volume, 2 channels": RNG.integers(0, 60000, (2, 3, 40, 37)).astype(np.uint16),
    "float": RNG.normal(0, 1, (1, 33, 40)).astype(np.float32),
}


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("shard", [None, 2])
def test_ome_zarr_levels_lie_on_level_0_and_show_colours_and_contrast(tmp_path, name, shard):
    data = IMAGES[name]
    levels = validate_ome_zarr(_write(tmp_path / "o.ome.zarr", data, shard=shard))
    unit = 16 * (shard or 1)
    assert max(levels[-1].shape[-2:]) <= unit < max(levels[-2].shape[-2:])
    for level, expected in zip(levels, _pyramid(data, len(levels)), strict=True):
        np.testing.assert_array_equal(level, expected)
    node = next(iter(Reader(parse_url(str(tmp_path / "o.ome.zarr")))()))
    transforms = node.metadata["coordinateTransformations"]
    for k, (scale, translation) in enumerate(transforms[1:], start=1):
        y = data.ndim - 2
        assert scale["scale"][y:] == [SIZE["y"] * 2**k, SIZE["x"] * 2**k]
        # a pooled pixel's centre: half a level-0 pixel past its block's first pixel, and so on
        assert translation["translation"][y:] == [SIZE["y"] * (2**k - 1) / 2] * 2
    if data.ndim == 4:
        assert transforms[0][0]["scale"][1] == SIZE["z"]
    limits = node.metadata["contrast_limits"]
    if name == "RGB":
        assert node.metadata["channel_names"] == ["R", "G", "B"]
        assert limits == [[0, 255]] * 3
        assert [c["color"] for c in zarr.open_group(str(tmp_path / "o.ome.zarr")).attrs["ome"][
            "omero"]["channels"]] == ["FF0000", "00FF00", "0000FF"]
    else:  # contrast limits from the data, inside the pixel type's range
        for (low, high), channel in zip(limits, levels[-1].reshape(data.shape[0], -1),
                                        strict=True):
            assert channel.min() <= low < high <= channel.max()
    if shard:
        assert zarr.open_array(str(tmp_path / "o.ome.zarr" / "0")).shards[-1] == 32


@pytest.mark.parametrize("name", IMAGES)
def test_ome_tiff_pyramid_every_level_read_back(tmp_path, name):
    data = IMAGES[name]
    path = _write(tmp_path / "o.ome.tif", data)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and not tif.is_bigtiff
        series = tif.series[0]
        assert len(series.levels) > 1
        expected = _pyramid(data, len(series.levels))
        for level, want in zip(series.levels, expected, strict=True):
            np.testing.assert_array_equal(_canonical(level.asarray(), series.axes), want)
            assert level.keyframe.is_tiled and level.keyframe.compression != 1
        assert max(series.levels[-1].shape[-3 if name == "RGB" else -2:][:2]) <= 16
        pixels = from_xml(tif.ome_metadata).images[0].pixels
    assert (pixels.physical_size_x, pixels.physical_size_y) == (SIZE["x"], SIZE["y"])
    assert pixels.physical_size_x_unit.value == "µm"
    assert pixels.size_x == data.shape[-1] and pixels.size_y == data.shape[-2]
    assert pixels.size_z == (data.shape[1] if data.ndim == 4 else 1)
    assert pixels.size_c == data.shape[0]
    if data.ndim == 4:
        assert pixels.physical_size_z == SIZE["z"]
    np.testing.assert_array_equal(read_image(path), data)  # utom reads its own level 0


def test_ome_tiff_becomes_bigtiff_when_offsets_would_overflow(tmp_path, monkeypatch):
    monkeypatch.setattr(ometiff, "CLASSIC_MAX_BYTES", 1000)
    path = _write(tmp_path / "o.ome.tif", IMAGES["16-bit 2D, odd"])
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and len(tif.series[0].levels) == 4  # 71, 36, 18, 9 rows


def test_large_plain_tiff_is_tiled_and_compressed(tmp_path, monkeypatch):
    monkeypatch.setattr(ometiff, "TILED_FROM_PIXELS", 1000)
    data = IMAGES["16-bit 2D, odd"]
    path = _write(tmp_path / "big.tif", data)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert not tif.is_ome and len(tif.series[0].levels) == 1
    source = open_image(path)
    assert source.info.pixel_size == pytest.approx({"x": 0.25, "y": 0.25})
    np.testing.assert_array_equal(source.read((slice(3, 60), slice(5, 44))), data[:, 3:60, 5:44])
    source.close()
    assert [p.name for p in tmp_path.iterdir()] == ["big.tif"]  # no scratch store left


def test_predict_writes_ome_tiff_by_format_and_by_suffix(tmp_path, cli, demo_model):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, RNG.integers(0, 20000, (90, 70)).astype(np.uint16),
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    by_format = cli("predict", demo_model, image, "--out", tmp_path / "out", "--format",
                    "ome-tiff", "--tile", "32")
    assert by_format.code == 0, by_format.err
    by_suffix = cli("predict", demo_model, image, "--out", tmp_path / "p.ome.tif", "--tile", "32")
    assert by_suffix.code == 0, by_suffix.err
    for path in (tmp_path / "out" / "in.ome.tif", tmp_path / "p.ome.tif"):
        with tifffile.TiffFile(path) as tif:
            assert len(tif.series[0].levels) == 3  # 90 → 45 → 23 ≤ one 32-px tile
            assert from_xml(tif.ome_metadata).images[0].pixels.physical_size_x == 0.5
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "in.ome.tif"),
                                  read_image(tmp_path / "p.ome.tif"))
