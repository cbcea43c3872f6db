"""Bad input gets one clear line, never a traceback or a silent wrong result, and leaves nothing.

A corpus of bad inputs, generated here (no committed binaries), each run through the command
line as a user would: ``utom train``, ``predict``, ``run`` and ``threshold``. Every case must
exit non-zero with exactly one line on stderr that names the file or option and the problem,
and the working folder and the shared inputs must be byte-for-byte what they were (no run
directory, no output, no hidden temporary file).

Decisions on dimensionality (see docs/guarantees.md): a 2D training domain takes stacks of
any kind (Z, T, …) as sets of planes; XZ/YZ planes (isotropic restoration) need volumes with a
single z axis; PNG holds 2D images only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from PIL import Image
from reliability.checks import (
    CLI,
    ONE_THREAD,
    TINY,
    Data,
    blob_image,
    chunk_files,
    one_line_error,
    snapshot,
    write_zarr,
)

from utom_core import trained

RNG = np.random.default_rng(7)

# -- bad files -------------------------------------------------------------------------------


def _tiff_bytes() -> bytes:
    path_data = blob_image(np.random.default_rng(1), 500, 48)
    from io import BytesIO

    buffer = BytesIO()
    tifffile.imwrite(buffer, path_data)
    return buffer.getvalue()


def _png_bytes() -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray((blob_image(np.random.default_rng(2), 500, 48) // 256).astype(np.uint8)
                    ).save(buffer, format="PNG")
    return buffer.getvalue()


def tiff_empty(w: Path) -> Path:
    (w / "bad.tif").write_bytes(b"")
    return w / "bad.tif"


def tiff_truncated(w: Path) -> Path:
    data = _tiff_bytes()
    (w / "bad.tif").write_bytes(data[: len(data) // 2])
    return w / "bad.tif"


def tiff_zero_rows(w: Path) -> Path:
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(w / "bad.tif", np.zeros((0, 10), np.uint16))
    return w / "bad.tif"


def tiff_corrupt(w: Path) -> Path:
    (w / "bad.tif").write_bytes(b"II*\x00" + np.random.default_rng(3).bytes(600))
    return w / "bad.tif"


def png_empty(w: Path) -> Path:
    (w / "bad.png").write_bytes(b"")
    return w / "bad.png"


def png_truncated(w: Path) -> Path:
    data = _png_bytes()
    (w / "bad.png").write_bytes(data[: len(data) // 2])
    return w / "bad.png"


def png_corrupt(w: Path) -> Path:
    (w / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(4).bytes(300))
    return w / "bad.png"


def _good_zarr(w: Path) -> Path:
    return write_zarr(w / "bad.ome.zarr", blob_image(np.random.default_rng(5), 500, 40)[None])


def zarr_empty_folder(w: Path) -> Path:
    (w / "bad.ome.zarr").mkdir()
    return w / "bad.ome.zarr"


def zarr_bad_json(w: Path) -> Path:
    store = _good_zarr(w)
    (store / "zarr.json").write_text("{not json")
    return store


def zarr_no_array(w: Path) -> Path:
    store = _good_zarr(w)
    shutil.rmtree(store / "0")
    return store


def zarr_missing_chunk(w: Path) -> Path:
    store = _good_zarr(w)
    chunk_files(store)[4].unlink()  # an interrupted copy: zarr would read zeros there
    return store


def zarr_corrupt_chunk(w: Path) -> Path:
    store = _good_zarr(w)
    chunk_files(store)[0].write_bytes(b"garbage")
    return store


def zarr_zero_size(w: Path) -> Path:
    store = w / "bad.ome.zarr"
    group = zarr.create_group(str(store), zarr_format=3)
    group.create_array("0", shape=(1, 0, 10), chunks=(1, 1, 10), dtype="uint16",
                       dimension_names=["c", "y", "x"])
    group.update_attributes({"ome": {"version": "0.5", "multiscales": [{
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
                 {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]}})
    return store


def tiff_rgb(w: Path) -> Path:
    tifffile.imwrite(w / "rgb.tif", RNG.integers(0, 255, (40, 40, 3), dtype=np.uint8),
                     photometric="rgb")
    return w / "rgb.tif"


def tiff_nan(w: Path) -> Path:
    data = RNG.random((48, 48)).astype(np.float32) * 1000
    data[20, 30] = np.nan
    tifffile.imwrite(w / "nan.tif", data)
    return w / "nan.tif"


def tiff_inf(w: Path) -> Path:
    data = RNG.random((48, 48)).astype(np.float32) * 1000
    data[47, 0] = np.inf
    tifffile.imwrite(w / "inf.tif", data)
    return w / "inf.tif"


def tiff_constant(w: Path) -> Path:
    tifffile.imwrite(w / "flat.tif", np.full((48, 48), 700, np.uint16))
    return w / "flat.tif"


def tiff_5d_two_channels(w: Path) -> Path:
    tifffile.imwrite(w / "tzcyx.tif", RNG.integers(0, 5000, (2, 3, 2, 24, 24), dtype=np.uint16),
                     imagej=True, metadata={"axes": "TZCYX"})
    return w / "tzcyx.tif"


def tiff_4d_no_axes(w: Path) -> Path:
    tifffile.imwrite(w / "4d.tif", RNG.integers(0, 5000, (2, 3, 24, 24), dtype=np.uint16),
                     photometric="rgb", planarconfig="separate")  # 2 pages of 3 samples
    return w / "4d.tif"


def tiff_2d(w: Path) -> Path:
    tifffile.imwrite(w / "plane.tif", blob_image(RNG, 500, 40))
    return w / "plane.tif"


def tiff_time_and_z(w: Path) -> Path:
    stack = np.stack([np.stack([blob_image(RNG, 500, 32) for _ in range(3)]) for _ in range(2)])
    tifffile.imwrite(w / "tzyx.tif", stack, imagej=True, metadata={"axes": "TZYX"})
    return w / "tzyx.tif"


def empty_dir(w: Path) -> Path:
    (w / "empty").mkdir()
    (w / "empty" / "notes.txt").write_text("no images here")
    return w / "empty"


def unknown_extension(w: Path) -> Path:
    (w / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    return w / "bad.jpg"


def missing(w: Path) -> Path:
    return w / "nothing.tif"


Maker = Callable[[Path], Path]

FILES: dict[str, tuple[Maker, tuple[str, ...]]] = {
    "tiff-empty": (tiff_empty, ("bad.tif", "not a readable TIFF")),
    "tiff-truncated": (tiff_truncated, ("bad.tif", "truncated")),
    "tiff-corrupt": (tiff_corrupt, ("bad.tif", "not a readable TIFF")),
    "tiff-zero-rows": (tiff_zero_rows, ("bad.tif", "image is empty")),
    "png-empty": (png_empty, ("bad.png", "not a readable PNG")),
    "png-truncated": (png_truncated, ("bad.png", "not a readable PNG")),
    "png-corrupt": (png_corrupt, ("bad.png", "not a readable PNG")),
    "zarr-empty-folder": (zarr_empty_folder, ("bad.ome.zarr", "not a readable OME-Zarr")),
    "zarr-bad-json": (zarr_bad_json, ("bad.ome.zarr", "not a readable OME-Zarr")),
    "zarr-no-array": (zarr_no_array, ("bad.ome.zarr", "invalid OME-Zarr metadata")),
    "zarr-missing-chunk": (zarr_missing_chunk, ("bad.ome.zarr", "1 of 9 chunks", "missing")),
    "zarr-corrupt-chunk": (zarr_corrupt_chunk, ("bad.ome.zarr", "cannot read pixels")),
    "zarr-zero-size": (zarr_zero_size, ("bad.ome.zarr", "empty")),
    "wrong-channels-rgb": (tiff_rgb, ("rgb.tif", "channel")),
    "5d-two-channels": (tiff_5d_two_channels, ("tzcyx.tif", "channel")),
    "4d-no-axes": (tiff_4d_no_axes, ("4d.tif", "channel")),
    "float-nan": (tiff_nan, ("nan.tif", "NaN")),
    "float-inf": (tiff_inf, ("inf.tif", "infinite")),
    "folder-without-images": (empty_dir, ("empty", "no supported images")),
    "unknown-extension": (unknown_extension, ("bad.jpg", "unsupported image format")),
    "missing-file": (missing, ("nothing.tif", "no such file")),
}

# -- the corpus: (command line builder, words the one error line must contain) ----------------

Build = Callable[[Path, Data], list]


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    needles: tuple[str, ...]
    marks: tuple = ()


def _train(bad: Maker, task: str = "denoise", side: str = "a") -> Build:
    def build(w: Path, d: Data) -> list:
        a, b = (bad(w), d.b[0]) if side == "a" else (d.a[0], bad(w))
        if task == "isotropic":
            a, b = (bad(w), d.volume) if side == "a" else (d.volume, bad(w))
        return ["train", task, "--a", a, "--b", b, "--out", w / "run", *TINY]
    return build


def _predict(bad: Maker, model: str = "model", out: str = "pred.tif") -> Build:
    return lambda w, d: ["predict", getattr(d, model), bad(w), "--out", w / out]


def _threshold(bad: Maker) -> Build:
    return lambda w, d: ["threshold", bad(w), "--task", "denoise"]


def _run_test(bad: Maker) -> Build:
    return lambda w, d: ["run", "denoise", "--a", d.a[0], "--b", d.b[0], "--test", bad(w),
                         "--out", w / "out", *TINY]


def _run_a(bad: Maker) -> Build:
    return lambda w, d: ["run", "denoise", "--a", bad(w), "--b", d.b[0], "--out", w / "out",
                         *TINY]


def _train_opts(*options: str) -> Build:
    return lambda w, d: ["train", "denoise", "--a", d.a[0], "--b", d.b[0], "--out", w / "run",
                         *TINY, *options]


def _config(text: str | bytes) -> Build:
    def build(w: Path, d: Data) -> list:
        path = w / "bad.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return _train_opts("--config", path)(w, d)
    return build


def _predict_opts(*options: str, out: str = "pred.tif") -> Build:
    return lambda w, d: ["predict", d.model, d.a[0], "--out", w / out, *options]


def _model(make: Callable[[Path, Data], Path]) -> Build:
    return lambda w, d: ["predict", make(w, d), d.a[0], "--out", w / "pred.tif"]


def _copy(image: Path, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(image, to))


def _state(d: Data) -> dict:
    return dict(torch.load(d.model / trained.MODEL_FILE, weights_only=True))


def _saved(w: Path, state: object, name: str = "m.pt") -> Path:
    torch.save(state, w / name)
    return w / name


def model_truncated(w: Path, d: Data) -> Path:
    data = (d.model / trained.MODEL_FILE).read_bytes()
    (w / "m.pt").write_bytes(data[: len(data) // 2])
    return w / "m.pt"


def model_no_weights(w: Path, d: Data) -> Path:
    state = _state(d)
    del state["ema_ab"], state["g_ab"]
    return _saved(w, state)


def model_wrong_shapes(w: Path, d: Data) -> Path:
    state = _state(d)
    state["ema_ab"] = {k: v[:1] for k, v in state["ema_ab"].items()}
    return _saved(w, state)


def model_bad_metadata(w: Path, d: Data) -> Path:
    state = _state(d)
    state["meta"] = {**state["meta"], "threshold_a": "bright"}
    return _saved(w, state)


def model_unknown_generator(w: Path, d: Data) -> Path:
    state = _state(d)
    state["config"] = {**state["config"], "generator": "from-the-internet"}
    return _saved(w, state)


def _empty_file(w: Path, d: Data) -> Path:
    (w / "m.pt").write_bytes(b"")
    return w / "m.pt"


def _run_dir_without_model(w: Path, d: Data) -> Path:
    (w / "run").mkdir()
    (w / "run" / "config.json").write_text("{}")
    return w / "run"


def _run_output(w: Path, d: Data) -> Path:
    """What ``utom run --out out`` leaves: the run directory inside, as ``out/run``."""
    shutil.copytree(d.model, w / "out" / "run")
    return w / "out"


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")

CASES: list[Case] = [
    # every broken file, given to training (domain A) and to prediction
    *(Case(f"train-{name}", _train(maker), needles) for name, (maker, needles) in FILES.items()),
    *(Case(f"predict-{name}", _predict(maker), needles)
      for name, (maker, needles) in FILES.items()),
    Case("train-constant-image", _train(tiff_constant), ("flat.tif", "no contrast")),
    Case("train-broken-b-side", _train(tiff_corrupt, side="b"), ("bad.tif", "TIFF")),
    Case("train-isotropic-2d-image", _train(tiff_2d, "isotropic"), ("plane.tif", "2D image")),
    Case("train-isotropic-time-and-z", _train(tiff_time_and_z, "isotropic"),
         ("tzyx.tif", "stacks axes TZ")),
    Case("predict-isotropic-time-and-z", _predict(tiff_time_and_z, "iso_model"),
         ("tzyx.tif", "stacks axes TZ")),
    Case("predict-volume-to-png", lambda w, d: ["predict", d.model, d.volume, "--out",
                                                w / "pred.png"], ("pred.png", "PNG holds only")),
    # threshold and run
    *(Case(f"threshold-{name}", _threshold(maker), needles) for name, (maker, needles) in [
        ("tiff-corrupt", FILES["tiff-corrupt"]), ("zarr-missing-chunk",
                                                  FILES["zarr-missing-chunk"]),
        ("float-nan", FILES["float-nan"]), ("wrong-channels-rgb", FILES["wrong-channels-rgb"]),
        ("folder-without-images", FILES["folder-without-images"]),
        ("constant-image", (tiff_constant, ("flat.tif", "no contrast")))]),
    Case("threshold-value-nan", lambda w, d: ["threshold", d.a[0], "--task", "denoise",
                                              "--value", "nan"], ("--value", "finite")),
    Case("threshold-unknown-task", lambda w, d: ["threshold", d.a[0], "--task", "nope"],
         ("unknown task 'nope'",)),
    *(Case(f"run-test-{name}", _run_test(maker), needles) for name, (maker, needles) in [
        ("tiff-corrupt", FILES["tiff-corrupt"]), ("png-truncated", FILES["png-truncated"]),
        ("wrong-channels-rgb", FILES["wrong-channels-rgb"]),
        ("missing-file", FILES["missing-file"])]),
    *(Case(f"run-a-{name}", _run_a(maker), needles) for name, (maker, needles) in [
        ("tiff-corrupt", FILES["tiff-corrupt"]), ("float-nan", FILES["float-nan"]),
        ("constant-image", (tiff_constant, ("flat.tif", "no contrast")))]),
    Case("run-reference-wrong-shape", lambda w, d: [
        "run", "denoise", "--a", d.a[0], "--b", d.b[0], "--test", d.a[1], "--reference",
        tiff_rgb(w), "--out", w / "out", *TINY], ("rgb.tif", "does not fit", "a1.tif")),
    Case("run-tests-one-name", lambda w, d: [
        "run", "denoise", "--a", d.a[0], "--b", d.b[0], "--test", _copy(d.a[1], w / "x" / "t.tif"),
        "--test", _copy(d.a[1], w / "y" / "t.tif"), "--out", w / "out", *TINY],
        ("t.tif would hold both", "rename")),
    Case("run-test-named-like-a-map", lambda w, d: [
        "run", "denoise", "--a", d.a[0], "--b", d.b[0], "--test", _copy(d.a[1], w / "t.tif"),
        "--test", _copy(d.a[1], w / "t.fidelity.tif"), "--out", w / "out", *TINY],
        ("t.fidelity.tif would hold both",)),
    Case("run-a-without-b", lambda w, d: ["run", "denoise", "--a", d.a[0], "--out", w / "out"],
         ("--a and --b",)),
    Case("run-unknown-task", lambda w, d: ["run", "nope", "--out", w / "out"],
         ("unknown task 'nope'",)),
    Case("run-bad-set", lambda w, d: ["run", "denoise", "--out", w / "out", "--set", "tile=0"],
         ("tile",)),
    Case("train-unknown-task", lambda w, d: ["train", "nope", "--a", d.a[0], "--b", d.b[0],
                                             "--out", w / "run"], ("unknown task 'nope'",)),
    Case("train-without-b", lambda w, d: ["train", "denoise", "--a", d.a[0], "--out", w / "run",
                                          *TINY], ("--a and --b",)),
    Case("train-resume-nothing", lambda w, d: ["train", "denoise", "--resume", "--out",
                                               w / "run"], ("nothing to resume",)),
    # settings: --set, --config and options
    Case("set-unknown-key", _train_opts("--set", "colour=red"), ("colour", "Extra inputs")),
    Case("set-without-equals", _train_opts("--set", "ngf"), ("--set 'ngf'", "key=value")),
    Case("set-empty-key", _train_opts("--set", "=3"), ("--set '=3'",)),
    Case("set-wrong-type", _train_opts("--set", "ngf=[1]"), ("ngf", "integer")),
    Case("set-deep-array", _train_opts("--set", "ngf=" + "[" * 3000 + "]" * 3000), ("ngf",)),
    Case("set-unknown-choice", _train_opts("--set", "method=gan"), ("method",)),
    Case("set-tile-zero", _train_opts("--set", "tile=0"), ("tile", "16")),
    Case("set-tile-negative", _train_opts("--set", "tile=-32"), ("tile",)),
    Case("set-tile-not-a-multiple", _train_opts("--set", "tile=18"), ("tile 18", "multiple of 4")),
    Case("set-tile-too-small-for-discriminator", _train_opts("--set", "d_layers=6"),
         ("tile 32", "too small")),
    Case("set-unet-too-deep", _train_opts("--set", "generator=unet", "--set", "unet_depth=8"),
         ("tile 32", "multiple of 256")),
    Case("set-unet-too-deep-for-the-shift-term", _train_opts("--set", "generator=unet"),
         ("tile 32 (the shift term's 16-px crop)", "too small")),
    Case("set-unknown-generator", _train_opts("--set", "generator=evil"),
         ("unknown generator 'evil'",)),
    Case("set-iterations-negative", _train_opts("--set", "iterations=-1"), ("iterations",)),
    Case("set-iterations-absurd", _train_opts("--set", "iterations=99999999999"),
         ("iterations", "less than")),
    Case("set-lr-nan", _train_opts("--set", "lr=nan"), ("lr", "finite")),
    Case("set-lambda-inf", _train_opts("--set", "lambda_cycle=inf"), ("lambda_cycle", "finite")),
    Case("set-betas-out-of-range", _train_opts("--set", "betas=[2.0, 0.999]"), ("betas",)),
    Case("set-betas-wrong-length", _train_opts("--set", "betas=[0.5]"), ("betas",)),
    Case("set-batch-zero", _train_opts("--set", "batch_size=0"), ("batch_size",)),
    Case("set-checkpoint-every-zero", _train_opts("--set", "checkpoint_every=0"),
         ("checkpoint_every",)),
    Case("set-sample-pixels-absurd", _train_opts("--set", "sample_pixels=1e12"),
         ("sample_pixels",)),
    Case("set-device-cuda-missing", _train_opts("--set", "device=cuda"), ("cuda",), (NO_CUDA,)),
    Case("option-iterations-negative", _train_opts("--iterations", "-1"), ("--iterations",)),
    Case("option-seed-negative", _train_opts("--seed", "-1"), ("seed",)),
    Case("option-unknown-budget", _train_opts("--budget", "huge"), ("--budget",)),
    Case("option-unknown-method", _train_opts("--method", "gan"), ("--method",)),
    Case("option-threshold-nan", _train_opts("--threshold-a", "nan"), ("threshold_a", "finite")),
    Case("option-threshold-markup", _train_opts("--threshold-a", "[/b]"),
         ("--threshold-a", "[/b]", "neither a number")),
    Case("option-threshold-absurd", _train_opts("--threshold-a", "1e9"),
         ("threshold 1e+09", "content")),
    Case("config-syntax", _config("ngf = [\n"), ("bad.toml", "not valid TOML")),
    Case("config-unknown-key", _config("bogus = 3\n"), ("bad.toml", "bogus", "Extra inputs")),
    Case("config-nested-table", _config("[ngf]\nx = 1\n"), ("bad.toml", "ngf")),
    Case("config-binary", _config(b"\xff\xfe\x00garbage"), ("bad.toml", "not valid TOML")),
    Case("config-deep", _config("ngf = " + "[" * 3000 + "]" * 3000), ("bad.toml", "nested")),
    Case("config-bad-value", _config("tile = 0\n"), ("bad.toml", "tile")),
    Case("config-missing", _train_opts("--config", "missing.toml"),
         ("missing.toml", "cannot read")),
    Case("predict-tile-zero", _predict_opts("--tile", "0"), ("--tile",)),
    Case("predict-tile-tiny", _predict_opts("--tile", "4"), ("--tile",)),
    Case("predict-overlap-one", _predict_opts("--overlap", "1"), ("--overlap",)),
    Case("predict-overlap-negative", _predict_opts("--overlap", "-0.1"), ("--overlap",)),
    Case("predict-batch-zero", _predict_opts("--batch", "0"), ("--batch",)),
    Case("predict-unknown-direction", _predict_opts("--direction", "c2d"), ("--direction",)),
    Case("predict-unknown-stitch", _predict_opts("--stitch", "glue"), ("--stitch",)),
    Case("predict-format-mismatch", _predict_opts("--format", "zarr"), ("--format zarr",)),
    Case("predict-unknown-output-format", _predict_opts(out="pred.jpg"),
         ("pred.jpg", "cannot write this format")),
    Case("predict-device-cuda-missing", _predict_opts("--device", "cuda"), ("cuda",),
         (NO_CUDA,)),
    Case("predict-several-inputs-one-file", lambda w, d: ["predict", d.model, d.a[0], d.a[1],
                                                          "--out", w / "pred.tif"],
         ("several inputs need a folder",)),
    Case("predict-input-given-twice", lambda w, d: ["predict", d.model, d.a[0], d.a[0],
                                                    "--out", w / "out"], ("given twice",)),
    Case("predict-file-and-its-folder", lambda w, d: ["predict", d.model, d.a[0].parent,
                                                      d.a[0], "--out", w / "out"],
         ("given twice",)),
    Case("run-test-given-twice", lambda w, d: [
        "run", "denoise", "--a", d.a[0], "--b", d.b[0], "--test", d.a[1], "--test", d.a[1],
        "--out", w / "out", *TINY], ("given twice",)),
    # models that are not what they claim (see also test_untrusted_files.py)
    Case("model-missing", lambda w, d: ["predict", w / "m.pt", d.a[0], "--out", w / "p.tif"],
         ("m.pt", "no such checkpoint")),
    Case("model-empty-file", _model(_empty_file), ("m.pt", "not a loadable")),
    Case("model-truncated", _model(model_truncated), ("m.pt", "not a loadable")),
    Case("model-not-a-dict", _model(lambda w, d: _saved(w, [1, 2, 3])),
         ("m.pt", "not a utom checkpoint")),
    Case("model-is-an-image", _model(lambda w, d: d.a[1]), ("a1.tif", "not a loadable")),
    Case("model-without-weights", _model(model_no_weights), ("m.pt", "weights")),
    Case("model-wrong-weight-shapes", _model(model_wrong_shapes), ("m.pt", "do not fit")),
    Case("model-bad-metadata", _model(model_bad_metadata), ("m.pt", "threshold_a")),
    Case("model-unknown-generator", _model(model_unknown_generator),
         ("unknown generator 'from-the-internet'",)),
    Case("model-folder-without-model", _model(_run_dir_without_model),
         ("run", "not a run directory")),
    Case("model-is-a-run-output", _model(_run_output), ("is a utom run output", "out/run")),
    Case("model-best-of-a-run-output", lambda w, d: [*_model(_run_output)(w, d), "--checkpoint",
                                                     "best"], ("is a utom run output",)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case: Case, cli, tmp_path, data,
                                                         monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = case.build(work, data)
    before = snapshot(work, data.root)
    result = cli(*args)
    one_line_error(result, *case.needles)
    assert snapshot(work, data.root) == before


def test_corpus_size():
    """The corpus is what the report counts; keep it from shrinking by accident."""
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)


# -- edge inputs that are fine: they must work, not fail ---------------------------------------


def test_tiny_images_stacks_and_constant_inputs_work(cli, tmp_path, data):
    """Images smaller than one tile train and predict; a 3D stack is a set of training planes
    for a 2D domain; a constant image is predicted (only fitting needs contrast)."""
    tiny = tmp_path / "tiny.tif"
    tifffile.imwrite(tiny, np.stack([blob_image(RNG, 800, 12)[:10] for _ in range(3)]),
                     imagej=True, metadata={"axes": "ZYX"})  # 3 planes of 10 × 12 < tile 32
    run = tmp_path / "run"
    # per-domain ranges: pooled with B, a 10 × 12 blob crop is all content
    result = cli("train", "denoise", "--a", tiny, "--b", data.b[0], "--out", run, *TINY,
                 "--iterations", "2", "--set", "shared_range=false", "--set", "anchor_sigma=0")
    assert result.code == 0, result.err
    said = [line for line in result.err.splitlines() if line.startswith("warning: tile 32")]
    assert said == [f"warning: tile 32 is larger than every low-SNR fluorescence image (the "
                    f"largest plane is 10 × 12 px, in {tiny}): its tiles are mostly mirrored "
                    "padding, at the memory and time of 32-px tiles; a tile of at most 12 px fits "
                    "it along its longer side"], result.err  # once, for A only: B's image is 96 px
    for name, image in [("one-pixel", np.array([[7]], np.uint16)),
                        ("one-row", RNG.integers(0, 5000, (1, 50), dtype=np.uint16)),
                        ("flat", np.full((30, 20), 700, np.uint16))]:
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
        out = tmp_path / f"{name}-pred.tif"
        result = cli("predict", run, tmp_path / f"{name}.tif", "--out", out, "--tile", "32")
        assert result.code == 0, result.err
        assert tifffile.imread(out).shape == image.shape
    out = tmp_path / "volume-pred.tif"
    assert cli("predict", run, tiny, "--out", out).code == 0
    assert tifffile.imread(out).shape == (3, 10, 12)  # a volume is predicted plane by plane


def test_written_zarr_with_empty_chunks_reads_back(tmp_path):
    """utom stores every chunk (even all-zero ones), so its own outputs pass the
    missing-chunk check."""
    from utom_core.io import open_image

    image = np.zeros((1, 40, 40), np.uint16)
    image[0, :8, :8] = 5
    store = write_zarr(tmp_path / "sparse.ome.zarr", image)
    assert len(chunk_files(store)) == 9
    source = open_image(store)
    assert np.array_equal(source.read((slice(None), slice(None))), image)
    assert json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["version"] == "0.5"


@pytest.mark.slow
def test_a_real_process_prints_one_line_for_a_corrupt_file(tmp_path, data):
    """What only a real process shows: libraries' log records (tifffile describing the damage)
    would reach stderr through logging's last-resort handler; pytest captures them in-process."""
    bad = tiff_corrupt(tmp_path)
    proc = subprocess.run([*CLI, "predict", data.model, bad, "--out", tmp_path / "p.tif"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: not a readable TIFF"), \
        proc.stderr
