"""Property-based fuzzing (hypothesis) of the code every input passes through: tiled prediction
(any shape, tile, overlap, batch, stitch), normalisation round trips (any dtype and range) and
settings parsing (any key/value tree either validates or is a UtomError — nothing else)."""

from __future__ import annotations

import json
import warnings

import numpy as np
from helpers import Identity, Memory, stitch_identity
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from utom_core.config import TrainConfig, build_config
from utom_core.config_layers import load_config_file, parse_overrides, parse_value
from utom_core.domain import Domain, Normalisation, fit_normalisation
from utom_core.errors import UtomError
from utom_core.inference import Norm, TileOptions, output_info, predict_image
from utom_core.inference.tiling import Stitch, TileGrid
from utom_core.io import ImageInfo
from utom_core.task import Slicing

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# -- tiling ------------------------------------------------------------------------------------


@FUZZ
@given(height=st.integers(1, 90), width=st.integers(1, 90), depth=st.sampled_from([0, 0, 2]),
       channels=st.integers(1, 3), dtype=st.sampled_from(["uint8", "uint16"]),
       tile=st.integers(8, 64), overlap=st.floats(0, 0.9), multiple=st.sampled_from([1, 2, 4, 8]),
       stitch=st.sampled_from(list(Stitch)), batch=st.integers(1, 5),
       norm=st.sampled_from(list(Norm)), max_pixels=st.sampled_from([None, 64, 100_000]),
       slicing=st.sampled_from(list(Slicing)), seed=st.integers(0, 2**16))
def test_identity_prediction_gives_back_any_image(height, width, depth, channels, dtype, tile,
                                                 overlap, multiple, stitch, batch, norm,
                                                 max_pixels, slicing, seed):
    shape = (channels, *([depth] if depth else []), height, width)
    data = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    full = float(np.iinfo(dtype).max)
    normalisation = Normalisation(low=(0.0,) * channels, high=(full,) * channels, dtype=dtype)
    generator = Identity(channels, multiple)
    sink = Memory(np.zeros(output_info(ImageInfo(shape, np.dtype(dtype)), channels, dtype).shape,
                           dtype))
    options = TileOptions(tile=tile, overlap=overlap, stitch=stitch, batch=batch, norm=norm,
                          max_pixels=max_pixels)
    predict_image(Memory(data), generator, normalisation, normalisation, sink, options, slicing)
    np.testing.assert_array_equal(sink.data, data)


@FUZZ
@given(height=st.integers(1, 150), width=st.integers(1, 150), tile=st.integers(1, 300),
       overlap=st.floats(0, 0.99), multiple=st.sampled_from([1, 2, 4, 16]),
       stitch=st.sampled_from(list(Stitch)))
def test_grid_and_stitcher_reassemble_any_shape(height, width, tile, overlap, multiple, stitch):
    grid = TileGrid((height, width), tile, overlap, multiple, stitch)
    for spans in (grid.rows, grid.cols):  # found: at high overlap, the same tile many times
        assert len({span.start for span in spans}) == len(spans)
    image = np.random.default_rng(height * width).random((2, height, width), dtype=np.float32)
    out = stitch_identity(image, grid)
    # float32 sums of up to ~100 feathered tiles (overlap 0.99): a few ulps, never more
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-4)


# -- normalisation -----------------------------------------------------------------------------

LIMITS = {"uint8": (0, 255), "uint16": (0, 65535), "float32": (-1e6, 1e6)}


@FUZZ
@given(dtype=st.sampled_from(list(LIMITS)), raw_dtype=st.sampled_from(
    ["uint8", "uint16", "int16", "int32", "float32", "float64"]), channels=st.integers(1, 3),
    data=st.data())
def test_invert_of_apply_is_identity_inside_the_fitted_range(dtype, raw_dtype, channels, data):
    lo, hi = LIMITS[dtype]
    low = data.draw(st.floats(lo, hi - 1, allow_nan=False), label="low")
    high = data.draw(st.floats(low + 1, hi, allow_nan=False), label="high")
    norm = Normalisation(low=(low,) * channels, high=(high,) * channels, dtype=dtype)
    if np.dtype(raw_dtype).kind in "ui":
        info = np.iinfo(raw_dtype)
        first, last = max(np.ceil(low), info.min), min(np.floor(high), info.max)
        assume(first <= last)
        raw = np.random.default_rng(0).integers(first, last, (channels, 5, 7), endpoint=True
                                                ).astype(raw_dtype)
    else:
        raw = np.random.default_rng(0).uniform(low, high, (channels, 5, 7)).astype(raw_dtype)
    unit = norm.apply(raw)
    assert unit.dtype == np.float32 and np.isfinite(unit).all()
    assert unit.min() >= -1 and unit.max() <= 1
    back = norm.invert(unit)
    assert back.dtype == np.dtype(dtype)
    if dtype == "float32":
        tolerance = (high - low) * 1e-6 + abs(high) * 1e-6
        np.testing.assert_allclose(back, raw.astype(np.float64), rtol=0, atol=tolerance)
    else:  # integers come back exactly: the round trip is far below half a grey level
        expected = np.clip(raw.astype(np.float64), lo, hi)
        # float inputs are rounded: half a level, plus float32 resolution at these values
        resolution = 4 * np.finfo(np.float32).eps * max(abs(low), abs(high), high - low)
        limit = 0 if raw.dtype.kind in "ui" else 0.5 + resolution
        assert np.abs(back.astype(np.float64) - expected).max() <= limit


@FUZZ
@given(dtype=st.sampled_from(list(LIMITS)), low=st.floats(-1e6, 1e6), span=st.floats(1, 1e6),
       beyond=st.floats(1, 1e9))
def test_values_outside_the_range_clip_to_its_ends(dtype, low, span, beyond):
    norm = Normalisation(low=(low,), high=(low + span,), dtype="float32")
    raw = np.array([[[low - beyond, low + span + beyond]]])
    np.testing.assert_array_equal(norm.apply(raw), [[[-1.0, 1.0]]])


@FUZZ
@given(samples=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1,
                        max_size=200), per_channel=st.booleans(),
       dtype=st.sampled_from(["uint8", "uint16", "float32"]))
@example(samples=[1.0] * 250 + [1.0000001], per_channel=False, dtype="float32")  # found: a
# range narrower than float32 resolution divided by zero (every pixel NaN)
@example(samples=[0.0, 1.7099616815490156e38], per_channel=False, dtype="uint8")  # found:
# float32 overflow warned (a stray stderr line) before clipping
def test_fitting_any_sample_gives_a_usable_normalisation_or_a_clear_refusal(samples,
                                                                         per_channel, dtype):
    domain = Domain(name="fuzz", channels=1, dtype=dtype, per_channel=per_channel)
    with warnings.catch_warnings():  # only here: the filter must not outlive the test
        warnings.simplefilter("error")  # a warning would be a stray line on the user's stderr
        try:
            norm = fit_normalisation(np.array([samples]), domain)
        except ValueError as err:
            assert str(err)
            return
        unit = norm.apply(np.array([samples], dtype=np.float32)[:, None])
    assert np.isfinite(unit).all(), (norm, samples)


# -- settings ----------------------------------------------------------------------------------

FIELDS = sorted(TrainConfig.model_fields)
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
           | st.text(max_size=12) | st.sampled_from(["auto", "task", "utom", "resnet", "cpu"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
keys = st.sampled_from(FIELDS) | st.text(max_size=10) | st.integers() | st.none()
trees = st.dictionaries(keys, values, max_size=6)


@FUZZ
@given(layers=st.lists(trees, max_size=3))
def test_any_settings_tree_validates_or_is_a_utom_error(layers):
    try:
        cfg = build_config(*layers)
    except UtomError as err:
        assert str(err).strip()
        return
    assert isinstance(cfg, TrainConfig)
    saved = json.loads(json.dumps(cfg.model_dump(mode="json")))  # config.json, for resume
    assert TrainConfig(**saved) == cfg
    assert cfg.decay_length() >= 1


@FUZZ
@given(pairs=st.lists(st.text(max_size=30) | st.builds(
    lambda k, v: f"{k}={v}", st.sampled_from(FIELDS), st.text(max_size=20)), max_size=5))
def test_any_set_option_parses_or_is_a_utom_error(pairs):
    try:
        overrides = parse_overrides(pairs)
    except UtomError as err:
        assert "--set" in str(err)
        return
    assert all(isinstance(k, str) and k for k in overrides)
    try:
        build_config(overrides, source="--set")
    except UtomError as err:
        assert str(err).startswith("--set")


@FUZZ
@given(text=st.text(max_size=40))
def test_any_set_value_parses(text):
    parse_value(text)  # TOML scalar/array or the text itself, never an exception


@FUZZ
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | st.builds(lambda k, v: f"{k} = {v}\n".encode(), st.sampled_from(FIELDS),
                   st.text(max_size=20)))
def test_any_config_file_loads_or_is_a_utom_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_bytes(content)
    try:
        layer = load_config_file(path)
        build_config(layer, source=str(path))
    except UtomError as err:
        assert str(err).startswith(str(path))
