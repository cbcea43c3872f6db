"""The one prediction path: each input opened once, and the Python API of docs/predict.md
(run from the doc itself, so it cannot drift) equal to ``utom predict``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import numpy as np
import tifffile
from helpers import REPO, TINY, blobs
from reliability.checks import save_model

from utom_core import api
from utom_core.io import read_image
from utom_core.io.base import ImageInfo
from utom_core.io.tiff import TiffReader
from utom_tasks.denoise import TASK


def _tiff(path, size: int, seed: int, noise: float = 1500) -> None:
    rng = np.random.default_rng(seed)
    image = 1000 + 20000 * blobs(rng, size) + rng.normal(0, noise or 1e-9, (size, size))
    tifffile.imwrite(path, image.clip(0, 65535).astype(np.uint16))


def test_a_prediction_opens_each_input_once(cli, tmp_path, monkeypatch):
    """Naming the output (no --format: by size), the check, --overlap auto (these planes are
    tiled) and the prediction all read the one open source."""
    run = save_model(tmp_path / "run", TASK.domain_a, TASK.domain_b, "denoise")
    images = [tmp_path / "in" / f"{n}.tif" for n in ("a", "b")]
    images[0].parent.mkdir()
    for seed, image in enumerate(images):
        _tiff(image, 150, seed)
    opened: Counter = Counter()
    real_open = TiffReader.open

    def counted(self, path):
        opened[path.name] += 1
        return real_open(self, path)

    monkeypatch.setattr(TiffReader, "open", counted)
    result = cli("predict", run, images[0].parent, "--out", tmp_path / "out", "--tile", "64")
    assert result.code == 0, result.err
    assert opened == {"a.tif": 1, "b.tif": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]


def python_examples() -> list[str]:
    """The code blocks of docs/predict.md's "From Python" section, in order."""
    section = (REPO / "docs" / "predict.md").read_text().split("## From Python")[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class MySink:
    """The doc's sink of one's own: the prediction in memory."""

    def __init__(self, info: ImageInfo) -> None:
        self.data, self.committed = np.zeros(info.shape, info.dtype), False

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.data[(slice(None), *region)] = data

    def commit(self, replace: bool = False) -> None:
        self.committed = True

    def abort(self) -> None:
        raise AssertionError("not expected to fail")


def test_the_documented_python_example_predicts_like_utom_predict(cli, tmp_path, monkeypatch):
    """docs/predict.md's examples, run as written on tiny data (trained for two iterations of
    the smoke budget instead of the demo budget), give ``utom predict``'s outputs bit for bit."""
    for folder, noise in (("noisy", 1500), ("clean", 0)):
        (tmp_path / folder).mkdir()
        _tiff(tmp_path / folder / "x.tif", 64, 0, noise)
    _tiff(tmp_path / "slide1.tif", 96, 1)
    _tiff(tmp_path / "slide2.tif", 80, 2)
    real_train = api.train

    def tiny(*args, **kwargs):
        return real_train(*args, **{**kwargs, "budget": "smoke", "show_progress": False,
                                    "settings": {**TINY, "iterations": 2}})

    monkeypatch.setattr(api, "train", tiny)
    monkeypatch.chdir(tmp_path)
    sinks: list[MySink] = []
    namespace = {"MySink": lambda info: sinks.append(MySink(info)) or sinks[-1]}
    for code in python_examples():
        exec(compile(code, "docs/predict.md", "exec"), namespace)
    for name in ("slide1", "slide2"):
        result = cli("predict", "run", f"{name}.tif", "--out", f"cli/{name}.tif")
        assert result.code == 0, result.err
        expected = read_image(tmp_path / "cli" / f"{name}.tif")
        np.testing.assert_array_equal(read_image(tmp_path / "predictions" / f"{name}.tif"),
                                      expected)
    assert len(sinks) == 1 and sinks[0].committed
    np.testing.assert_array_equal(sinks[0].data, read_image(tmp_path / "cli" / "slide1.tif"))


def test_import_utom_core_is_cheap_and_gives_the_api():
    code = ("import sys, utom_core; assert 'torch' not in sys.modules, 'torch imported'; "
            "[getattr(utom_core, n) for n in utom_core.__all__]")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
