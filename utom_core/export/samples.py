"""The files of a model package that utom computes: test tensors, cover, weights.

The test input is a window of a real image of the source domain (``--sample``, else the first
training image of the run that still exists and holds one, else smooth synthetic blobs in the
fitted range);
the test output is what utom's own prediction code makes of it, before rounding, so the zoo's
test checks the package against ``utom predict``.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch

from utom_core.domain import DTYPE_RANGE, PixelType
from utom_core.errors import InputError
from utom_core.evaluation.figures.panels import save_panel
from utom_core.inference.planes import PlanePredictor, TileOptions
from utom_core.io import FormatTable, open_image
from utom_core.networks.base import Generator
from utom_core.task import Slicing
from utom_core.trained import InputFile, TrainedModel

TEST_SIDE = 128
"""Preferred side of the test tensors in pixels (a multiple of the generator's)."""


def halo(generator: Generator) -> int:
    """The receptive radius rounded up to a multiple of the generator's: an input padded by
    it on both sides (as zoo consumers do) is still a size the generator takes."""
    multiple = generator.size_multiple
    return max(1, math.ceil(generator.receptive_radius / multiple)) * multiple


def min_side(generator: Generator) -> int:
    """The smallest input the package admits: two of the generator's multiples (its deepest
    layer needs two cells, as ``inference.tiling.padded_length``). The package declares no
    halo (the zoo predicts whole images unpadded, as ``utom predict`` does), so nothing is
    cropped from it."""
    return 2 * generator.size_multiple


def window_side(generator: Generator, height: int, width: int) -> int:
    """The largest valid side up to max(TEST_SIDE, min_side) that the image holds."""
    multiple = generator.size_multiple
    wanted = max(min_side(generator), math.ceil(TEST_SIDE / multiple) * multiple)
    return min(wanted, min(height, width) // multiple * multiple)


def test_window(sample: Path | None, recorded: list[InputFile | str], predictor: TrainedModel,
                formats: FormatTable | None = None) -> np.ndarray:
    """The test input: ``sample``'s window (a refusal is the user's to read), else that of the
    first of the run's source images that still exists and holds one, else synthetic blobs."""
    if sample is not None:
        return read_window(sample, predictor, formats)
    for path in (Path(r.path if isinstance(r, InputFile) else r) for r in recorded):
        if path.exists():
            with contextlib.suppress(InputError):  # too small, other channels: try the next
                return read_window(path, predictor, formats)
    return synthetic_window(predictor)


def read_window(path: Path, predictor: TrainedModel,
                formats: FormatTable | None = None) -> np.ndarray:
    """A centred square window (C, S, S) of the middle plane of ``path``, in the source dtype
    (``formats`` opens it: None, io's built-ins)."""
    source = open_image(path, formats=formats)
    try:
        shape, channels = source.info.shape, source.info.channels
        if channels != predictor.generator.in_channels:
            raise InputError(path, f"has {channels} channel(s); the {predictor.source.name} "
                                   f"generator reads {predictor.generator.in_channels}")
        height, width = shape[-2:]
        side = window_side(predictor.generator, height, width)
        if side < min_side(predictor.generator):
            raise InputError(path, f"is {height} × {width} pixels; the test input needs at "
                                   f"least {min_side(predictor.generator)} on each side")
        top, left = (height - side) // 2, (width - side) // 2
        region: tuple[slice, ...] = (slice(top, top + side), slice(left, left + side))
        if len(shape) == 4:
            region = (slice(shape[1] // 2, shape[1] // 2 + 1), *region)
        window = source.read(region)
    finally:
        source.close()
    return as_domain_dtype(window.reshape(channels, side, side), predictor.source.dtype)


def synthetic_window(predictor: TrainedModel, seed: int = 0) -> np.ndarray:
    """Smooth random blobs spanning the source's fitted range (no image to take one from)."""
    largest = max(TEST_SIDE, min_side(predictor.generator))
    side = window_side(predictor.generator, largest, largest)
    rng = np.random.default_rng(seed)
    noise = rng.random((predictor.source.channels, side // 8 + 2, side // 8 + 2))
    blobs = np.kron(noise, np.ones((8, 8)))[:, :side, :side]
    low = np.asarray(predictor.source_norm.low)[:, None, None]
    high = np.asarray(predictor.source_norm.high)[:, None, None]
    return as_domain_dtype(low + (high - low) * blobs, predictor.source.dtype)


def as_domain_dtype(pixels: np.ndarray, dtype: PixelType) -> np.ndarray:
    if dtype in DTYPE_RANGE:
        low, high = DTYPE_RANGE[dtype]
        return np.clip(np.rint(pixels), low, high).astype(dtype.value)
    return pixels.astype(np.float32)


def predict_unit(predictor: TrainedModel, window: np.ndarray, views: int) -> np.ndarray:
    """utom's prediction of a (C, S, S) raw window on the [-1, 1] scale (utom predict's code
    path: one whole-plane tile, its own normalisation statistics, ``views`` averaged)."""
    out = np.zeros((predictor.generator.out_channels, *window.shape[1:]), np.float32)

    def write(rows: slice, cols: slice, data: np.ndarray) -> None:
        out[:, rows, cols] = data

    options = TileOptions(views=views, axial=predictor.slicing is Slicing.xz_yz)
    PlanePredictor(predictor.generator, predictor.source_norm, options)(
        lambda rows, cols: window[:, rows, cols], window.shape[1:], write)
    return out


def raw_output(predictor: TrainedModel, unit: np.ndarray) -> np.ndarray:
    """Target raw units as float32: what utom predict writes before rounding."""
    return predictor.output_norm.unrounded(unit)


def save_cover(path: Path, predictor: TrainedModel, window: np.ndarray, unit: np.ndarray) -> None:
    """Input and prediction as the package gives it (its white balance included)."""
    shown = predictor.target_norm.apply(raw_output(predictor, unit))
    save_panel(path, [predictor.source_norm.apply(window), shown], ["input", "prediction"])


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def torch_bytes(obj: object, save=torch.save) -> bytes:
    """``save(obj)`` serialised in memory: written as bytes, a full disk is an OSError (torch's
    own file writers turn it into a RuntimeError)."""
    buffer = io.BytesIO()
    save(obj, buffer)
    return buffer.getvalue()


def save_torchscript(path: Path, model: torch.nn.Module, predictor: TrainedModel,
                     window: np.ndarray) -> None:
    """``model`` traced on the test input (convolutions, flips and transposes only: any size
    traces alike)."""
    example = torch.from_numpy(predictor.source_norm.apply(window))[None]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes; TorchScript's deprecation (torch 2.13)
        traced = torch.jit.trace(model, example, check_trace=False)
        data = torch_bytes(traced, torch.jit.save)
    path.write_bytes(data)
