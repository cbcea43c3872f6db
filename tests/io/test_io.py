"""Readers and writers: canonical axes, lazy regions, metadata round trips, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from helpers import validate_ome_zarr
from ome_zarr_models.v05.image import Image as OmeZarrImage
from PIL import Image

from utom_core.errors import InputError, UtomError
from utom_core.io import ImageInfo, list_images, open_image, read_image, writer_for

ALL = (slice(None), slice(None))
RNG = np.random.default_rng(0)


def _u16(*shape: int) -> np.ndarray:
    return RNG.integers(0, 65535, shape, dtype=np.uint16)


def _write(path: Path, data: np.ndarray, info: ImageInfo, replace: bool = False) -> Path:
    sink = writer_for(path).create(path, info, chunk=16)
    sink.write(tuple(slice(0, n) for n in data.shape[1:]), data)
    sink.commit(replace=replace)
    return path





@pytest.mark.parametrize(("kwargs", "axes_shape", "expected"), [
    ({"imagej": True, "metadata": {"axes": "ZYX"}}, (3, 20, 30), (1, 3, 20, 30)),
    ({"compression": "zlib", "tile": (16, 16), "photometric": "minisblack"}, (4, 20, 32),
     (1, 4, 20, 32)),
    ({"bigtiff": True}, (20, 30), (1, 20, 30)),
    ({"photometric": "rgb"}, (20, 30, 3), (3, 20, 30)),
])
def test_tiff_layouts_become_canonical(tmp_path, kwargs, axes_shape, expected):
    data = RNG.integers(0, 255, axes_shape, dtype=np.uint8 if axes_shape[-1] == 3 else np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", data, **kwargs)
    source = open_image(tmp_path / "in.tif")
    assert source.info.shape == expected
    whole = read_image(tmp_path / "in.tif")
    canonical = np.moveaxis(data, -1, 0) if axes_shape[-1] == 3 else data[None]
    np.testing.assert_array_equal(whole, canonical)
    region = (slice(2, 9), slice(5, 30, 4))
    if len(expected) == 4:
        region = (slice(1, 3), *region)
    np.testing.assert_array_equal(source.read(region), canonical[(slice(None), *region)])


def test_imagej_hyperstack_channels_and_time_as_planes(tmp_path):
    data = _u16(2, 4, 3, 10, 12)  # T Z C Y X
    tifffile.imwrite(tmp_path / "h.tif", data, imagej=True, metadata={"axes": "TZCYX"})
    source = open_image(tmp_path / "h.tif")
    assert source.info.shape == (3, 8, 10, 12)
    planes = source.read((slice(3, 6), *ALL))
    np.testing.assert_array_equal(planes[:, 2], data[1, 1])  # plane 5 = t 1, z 1


def test_pixel_size_survives_tiff_omezarr_tiff(tmp_path):
    data = _u16(3, 20, 24)
    tifffile.imwrite(tmp_path / "a.tif", data, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    info = open_image(tmp_path / "a.tif").info
    assert info.pixel_size == pytest.approx({"x": 0.25, "y": 0.25, "z": 2.0})
    _write(tmp_path / "b.ome.zarr", read_image(tmp_path / "a.tif"), info)
    middle = open_image(tmp_path / "b.ome.zarr").info
    assert middle.pixel_size == pytest.approx(info.pixel_size)
    _write(tmp_path / "c.tif", read_image(tmp_path / "b.ome.zarr"), middle)
    assert open_image(tmp_path / "c.tif").info.pixel_size == pytest.approx(info.pixel_size)
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif")[0], data)


def test_ome_tiff_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "a.ome.tif", _u16(20, 24), metadata={
        "axes": "YX", "PhysicalSizeX": 650.0, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 0.65, "PhysicalSizeYUnit": "µm"})
    assert open_image(tmp_path / "a.ome.tif").info.pixel_size == pytest.approx(
        {"x": 0.65, "y": 0.65})


def test_omezarr_is_ome_0_5(tmp_path):
    """Judged by the spec's own models and ome-zarr-py's reader (helpers.validate_ome_zarr)."""
    data = _u16(2, 3, 40, 36)
    path = _write(tmp_path / "o.ome.zarr", data,
                  ImageInfo(data.shape, data.dtype, {"x": 0.5, "y": 0.5, "z": 1.5}))
    levels = validate_ome_zarr(path)
    (multiscale,) = OmeZarrImage.from_zarr(zarr.open_group(str(path))).ome_attributes.multiscales
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [
        ("c", "channel", None), ("z", "space", "micrometer"), ("y", "space", "micrometer"),
        ("x", "space", "micrometer")]
    scale, translation = multiscale.datasets[1].coordinateTransformations
    assert scale.scale == [1.0, 1.5, 1.0, 1.0]
    assert translation.translation == [0.0, 0.0, 0.25, 0.25]  # half a level-0 pixel
    assert [level.shape for level in levels] == [(2, 3, 40, 36), (2, 3, 20, 18), (2, 3, 10, 9)]
    np.testing.assert_array_equal(levels[0], data)
    np.testing.assert_array_equal(read_image(path), data)


@pytest.mark.parametrize("shape", [(1, 20, 30), (3, 20, 30)])
def test_png_round_trip_and_alpha_dropped(tmp_path, shape):
    data = RNG.integers(0, 255, shape, dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_write(tmp_path / "a.png", data,
                                                   ImageInfo(shape, data.dtype))), data)
    if shape[0] == 3:
        rgba = np.dstack([np.moveaxis(data, 0, -1), np.full(shape[1:], 7, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
        np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), data)


def test_png_16_bit(tmp_path):
    data = _u16(1, 20, 30)
    Image.fromarray(data[0]).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, data)


def test_nothing_at_destination_until_commit_and_abort_cleans(tmp_path):
    info = ImageInfo((1, 20, 30), np.dtype("uint16"))
    for name in ("a.tif", "a.ome.zarr", "a.png"):
        sink = writer_for(tmp_path / name).create(tmp_path / name, info)
        sink.write(ALL, np.zeros(info.shape, np.uint16))
        assert not (tmp_path / name).exists()
        sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_existing_folder(tmp_path):
    info = ImageInfo((1, 8, 8), np.dtype("uint8"))
    for value in (1, 2):
        _write(tmp_path / "a.zarr", np.full(info.shape, value, np.uint8), info, replace=True)
    assert (read_image(tmp_path / "a.zarr") == 2).all()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zarr"]


def test_list_images_expands_folders_sorted(tmp_path):
    for name in ("b.tif", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list_images([tmp_path]) == [tmp_path / "a.png", tmp_path / "b.tif"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: folder contains no supported images"):
        list_images([tmp_path / "empty"])
    with pytest.raises(InputError, match=r"missing\.tif: no such file"):
        list_images([tmp_path / "missing.tif"])


def _corrupt(tmp_path: Path) -> Path:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    return tmp_path / "bad.tif"


def _truncated(tmp_path: Path) -> Path:
    tifffile.imwrite(tmp_path / "cut.tif", _u16(64, 64))
    data = (tmp_path / "cut.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.tif"


def _truncated_compressed(tmp_path: Path) -> Path:
    tifffile.imwrite(tmp_path / "cutz.tif", _u16(64, 64), compression="zlib", tile=(16, 16))
    data = (tmp_path / "cutz.tif").read_bytes()
    (tmp_path / "cutz.tif").write_bytes(data[: len(data) // 2])
    return tmp_path / "cutz.tif"


def _nan(tmp_path: Path) -> Path:
    data = np.ones((8, 8), np.float32)
    data[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    return tmp_path / "nan.tif"


def _bad_png(tmp_path: Path) -> Path:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path / "bad.png"


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: p / "missing.tif", "no such file"),
    (lambda p: (p / "a.jpg").write_bytes(b"x") and p / "a.jpg", "unsupported image format"),
    (_corrupt, "not a readable TIFF"),
    (_truncated, "truncated"),
    (_truncated_compressed, "cannot read pixels|not a readable TIFF"),
    (_nan, "NaN or infinite"),
    (_bad_png, "not a readable PNG"),
    (lambda p: (p / "x.zarr").mkdir() or p / "x.zarr", "not a readable OME-Zarr"),
])
def test_bad_inputs_are_one_line_input_errors(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(InputError, match=problem) as caught:
        read_image(path)
    assert caught.value.path == path and "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_unknown_output_format_and_big_png_refused(tmp_path):
    with pytest.raises(UtomError, match="cannot write this format"):
        writer_for(tmp_path / "a.jpg")
    with pytest.raises(UtomError, match="PNG holds only"):
        writer_for(tmp_path / "a.png").create(tmp_path / "a.png",
                                              ImageInfo((2, 8, 8), np.dtype("uint8")))
