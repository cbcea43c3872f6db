"""``utom export --bioimageio``: a zoo package that bioimageio.core's own test passes offline,
whose output on its test tensor is ``utom predict``'s, and that is written whole or not at all."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from export.offline_run import Smoke, network_attempts, offline_env, run_offline
from helpers import build_generator, run_record
from reliability.checks import CLI, leftovers, one_line_error, snapshot, wait_for
from reliability.disks import NO_SPACE, Result

from utom_core.export import samples
from utom_core.export.bioimageio import UNNAMED, export_bioimageio
from utom_core.export.card import PAPER_DOI
from utom_core.trained import load_model

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bioimageio-smoke")]


def _member(package: Path, name: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


def _array(package: Path, name: str) -> np.ndarray:
    return np.load(io.BytesIO(_member(package, name)))


def _zoo_prediction(package: Path, weight_format: str, image: np.ndarray) -> np.ndarray:
    """The package's output, computed by bioimageio.core as ``bioimageio test`` does."""
    from bioimageio.core import Sample, Tensor, create_prediction_pipeline, load_description

    model = load_description(package, perform_io_checks=False)
    sample = Sample(members={"input": Tensor.from_numpy(image, dims=("batch", "channel", "y",
                                                                     "x"))}, stat={}, id="t")
    with create_prediction_pipeline(model, weight_format=weight_format) as pipeline:
        output = pipeline.predict_sample_without_blocking(
            sample, skip_input_padding=True, skip_output_cropping=True)
    return np.asarray(output.members["output"].data)


def _tolerance(package: Path) -> float:
    """The absolute reproduction tolerance the package declares for its output."""
    from bioimageio.core import load_description

    model = load_description(package, perform_io_checks=False)
    return model.config.bioimageio.reproducibility_tolerance[0].absolute_tolerance


def test_the_export_fetches_nothing_and_bioimageio_test_passes_offline(smoke: Smoke):
    assert smoke.package.is_file()
    assert network_attempts(smoke.root) == []  # training and export reached for nothing
    tested = subprocess.run([sys.executable, "-m", "bioimageio.core", "test", str(smoke.package)],
                            capture_output=True, text=True, env=offline_env(smoke.root),
                            timeout=300)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "passed" in tested.stdout
    for check in ("Reproduce test outputs", "torchscript", "pytorch_state_dict"):
        assert check in tested.stdout
    assert network_attempts(smoke.root) == []


@pytest.mark.parametrize("weight_format", ["pytorch_state_dict", "torchscript"])
def test_zoo_output_on_its_test_tensor_is_utom_predicts(smoke: Smoke, tmp_path, weight_format):
    test_input = _array(smoke.package, "test_input.npy")
    stored = _array(smoke.package, "test_output.npy")
    image = tmp_path / "test_input.tif"
    tifffile.imwrite(image, test_input[0, 0])
    done = run_offline(tmp_path, "predict", smoke.run, image, "--out", tmp_path / "utom.tif")
    assert done.returncode == 0, done.stderr
    predicted = tifffile.imread(tmp_path / "utom.tif").astype(np.float64)

    zoo = _zoo_prediction(smoke.package, weight_format, test_input)
    assert zoo.shape == stored.shape == (1, 1, *predicted.shape)
    assert np.ptp(predicted) > 100  # a real image, not a constant
    # utom predict rounds to uint16; the package gives the same values unrounded
    assert np.abs(zoo[0, 0] - predicted).max() <= 0.5 + 1e-2
    # float32 noise only: the tolerance the package declares, 1e-5 of the output's range
    declared = _tolerance(smoke.package)
    assert 1e-3 <= declared < 1.0
    np.testing.assert_allclose(zoo, stored, rtol=1e-5, atol=declared)
    assert np.array_equal(np.rint(stored[0, 0]), predicted)


def test_the_package_describes_the_run(smoke: Smoke):
    from bioimageio.core import load_description

    model = load_description(smoke.package, perform_io_checks=False)
    meta = json.loads((smoke.run / "run.json").read_text())
    source, target = meta["normalisation_a"], meta["normalisation_b"]
    assert model.format_version.startswith("0.5")
    assert [a.name for a in model.authors] == ["Test Author"]
    assert PAPER_DOI in {str(c.doi) for c in model.cite}
    assert str(model.license) == "BSD-3-Clause"
    assert {"utom", "denoise", "pytorch"} <= set(model.tags)
    pre = {p.id: p.kwargs for p in model.inputs[0].preprocessing}
    (low,), (high,) = source["low"], source["high"]
    assert pre["scale_linear"].gain == pytest.approx(2 / (high - low))
    assert pre["scale_linear"].offset == pytest.approx(-(high + low) / (high - low))
    assert (pre["clip"].min, pre["clip"].max) == (-1, 1)
    post = {p.id: p.kwargs for p in model.outputs[0].postprocessing}
    (low,), (high,) = target["low"], target["high"]
    assert post["scale_linear"].gain == pytest.approx((high - low) / 2)
    assert post["scale_linear"].offset == pytest.approx((high + low) / 2)
    # no halo: the zoo would pad by it, and padding enters whole-image InstanceNorm statistics
    assert not any(getattr(a, "halo", 0) for a in model.outputs[0].axes)
    assert model.weights.pytorch_state_dict.architecture.kwargs["views"] == 8
    readme = _member(smoke.package, "README.md").decode()
    for section in ("## Task", "## Training data and budget", "## Validation", "## Limits",
                    "`a0.tif`", "6 of 6 iterations"):
        assert section in readme
    assert _member(smoke.package, "cover.png").startswith(b"\x89PNG")
    assert model.weights.pytorch_state_dict is not None and model.weights.torchscript is not None


def test_the_readme_reports_utom_runs_held_out_metrics(smoke: Smoke, tmp_path):
    """A run inside a ``utom run`` output: its test metrics are the Validation section."""
    from utom_core.export.bioimageio import make_card

    run = tmp_path / "out" / "run"
    shutil.copytree(smoke.run, run)
    run_record(metrics={"psnr": 27.25}).write(run.parent / "metrics.json")
    validation = make_card(run, "a2b", "ema", build_generator).readme().split("## Validation")[1]
    assert "| psnr | 27.25 |" in validation.split("##")[0]
    assert "No held-out metrics" in make_card(smoke.run, "a2b", "ema",
                                              build_generator).readme()
    # a run that predicted its tests with model_best.pt: that file's card has them (what
    # `utom export RUN` packages by default), the last model's has not
    shutil.copy(run / "model.pt", run / "model_best.pt")
    run_record(metrics={"psnr": 27.25}, predicted_with={
        "model": "best", "iteration": 1, "metric": "content_iou", "score": 0.9,
        "best_content_iou": 0.9}).write(run.parent / "metrics.json")
    cards = {name: make_card(file, "a2b", "ema", build_generator).readme()
             for name, file in (("best", run / "model_best.pt"), ("last", run))}
    assert "| psnr | 27.25 |" in cards["best"] and "No held-out metrics" in cards["last"]


def test_the_readme_gives_only_the_settings_its_method_uses(smoke: Smoke):
    """λ and ρ₀ where the method trains with them; a method without a cycle or a saliency
    term (CUT) leaves them unsaid rather than quote numbers that did nothing. Every method
    here trains with the shift term."""
    from utom_core.export.bioimageio import make_card
    from utom_core.methods import CUT, CYCLEGAN, UTOM

    def training(method) -> str:
        card = make_card(smoke.run, "a2b", "ema", build_generator, find_method=lambda _: method)
        return card.readme().split("## Training data and budget")[1].split("##")[0]

    assert "λ 10" in training(UTOM) and "ρ₀" in training(UTOM)
    assert "λ 10" in training(CYCLEGAN) and "ρ₀" not in training(CYCLEGAN)
    assert "λ " not in training(CUT) and "ρ₀" not in training(CUT)
    assert all("λ_shift 10" in training(method) for method in (UTOM, CYCLEGAN, CUT))


def test_the_architecture_file_needs_only_torch(smoke: Smoke, tmp_path):
    """A zoo user has no utom: the bundled source builds the generator from the rdf's callable
    and kwargs, and takes the weights."""
    from bioimageio.core import load_description

    architecture = load_description(smoke.package, perform_io_checks=False
                                    ).weights.pytorch_state_dict.architecture
    (tmp_path / "arch.py").write_bytes(_member(smoke.package, "utom_generator.py"))
    (tmp_path / "weights.pt").write_bytes(_member(smoke.package, "weights.pt"))
    code = f"""
import sys, importlib.util, torch
sys.modules['utom_core'] = None  # any import of utom fails
spec = importlib.util.spec_from_file_location('arch', 'arch.py')
module = importlib.util.module_from_spec(spec); sys.modules['arch'] = module  # Python's recipe
spec.loader.exec_module(module)
g = module.{architecture.callable}(**{dict(architecture.kwargs)!r})
g.load_state_dict(torch.load('weights.pt', weights_only=True))
print(tuple(g(torch.zeros(1, 1, 64, 64)).shape))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 1, 64, 64)"


def test_the_zoos_default_predict_gives_utom_predicts_output(smoke: Smoke, tmp_path):
    """A zoo user calls bioimageio.core's ``predict`` with its defaults on an image of their
    own, larger than the test tensor and not square: the output is ``utom predict``'s (with its
    default 8 views), within the rounding ``utom predict`` applies to uint16 (0.5) plus the
    float32 noise the package declares as its tolerance. With a declared halo the zoo padded
    the input, which shifted every pixel by thousands of raw units."""
    from bioimageio.core import predict

    test_side = _array(smoke.package, "test_input.npy").shape[-1]
    source = tifffile.imread(smoke.a[1])
    image = np.pad(source, ((0, test_side), (0, 2 * test_side)), mode="reflect")
    image = image[:image.shape[0] // 4 * 4, :image.shape[1] // 4 * 4]
    assert image.shape[0] > test_side and image.shape[1] > test_side
    tifffile.imwrite(tmp_path / "large.tif", image)
    done = run_offline(tmp_path, "predict", smoke.run, tmp_path / "large.tif", "--out",
                       tmp_path / "utom.tif")
    assert done.returncode == 0, done.stderr
    expected = tifffile.imread(tmp_path / "utom.tif").astype(np.float64)

    zoo = np.asarray(predict(model=smoke.package, inputs=image[None, None])
                     .members["output"].data)[0, 0]
    assert zoo.shape == expected.shape == image.shape
    assert np.ptp(expected) > 100  # a real image, not a constant
    # utom predict rounds and clips to uint16; the zoo gives the float values
    assert np.abs(np.clip(zoo, 0, 65535) - expected).max() <= 0.5 + _tolerance(smoke.package)


def test_a_narrow_training_stack_gives_the_test_input_and_the_author_is_nobody(smoke: Smoke,
                                                                              tmp_path):
    """Issue 28.5: the denoise demo trains on a (48, 192, 64) stack, which a halo-sized
    minimum refused; images that do not fit (other channels) are skipped, not fatal. Without
    --author the package names no login name as its author."""
    model = load_model(smoke.run, build_generator=build_generator)
    rng = np.random.default_rng(0)
    narrow, rgb = tmp_path / "narrow.tif", tmp_path / "rgb.tif"
    tifffile.imwrite(narrow, rng.integers(0, 4000, (48, 192, 64), dtype=np.uint16))
    tifffile.imwrite(rgb, rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    window = samples.test_window(None, [str(tmp_path / "gone.tif"), str(rgb), str(narrow)],
                                 model)
    assert window.shape == (1, 64, 64)
    assert np.array_equal(window[0], tifffile.imread(narrow)[24, 64:128, :])

    package = tmp_path / "m.zip"
    export_bioimageio(smoke.run, package, build_generator=build_generator, views=1)
    from bioimageio.core import load_description

    authors = load_description(package, perform_io_checks=False).authors
    assert [a.name for a in authors] == [UNNAMED]


def test_refusals_write_nothing_and_overwrite_replaces(smoke: Smoke, tmp_path, cli):
    package = tmp_path / "model.zip"
    with zipfile.ZipFile(package, "w") as earlier:  # an earlier package: what --overwrite takes
        earlier.writestr("rdf.yaml", "an earlier package")
    before = snapshot(tmp_path)
    one_line_error(cli("export", smoke.run, "--bioimageio", package), "already exists",
                   "--overwrite")
    one_line_error(cli("export", smoke.run, "--bioimageio", tmp_path / "model.tar"), ".zip")
    one_line_error(cli("export", smoke.run, "--bioimageio", tmp_path / "no" / "m.zip"),
                   "does not exist")
    one_line_error(cli("export", tmp_path, "--bioimageio", tmp_path / "x.zip"),
                   str(tmp_path), "not a run directory")
    assert snapshot(tmp_path) == before
    done = run_offline(tmp_path, "export", smoke.run, "--bioimageio", package, "--overwrite",
                       "--weights", "raw", "--direction", "b2a")
    assert done.returncode == 0, done.stderr
    rdf = _member(package, "rdf.yaml").decode()
    assert "weights: raw" in rdf and "direction: b2a" in rdf
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "model.zip"]


def test_a_generator_giving_nan_is_refused_before_anything_is_written(smoke: Smoke, tmp_path):
    """bioimageio.core's test passes NaN outputs that equal NaN test tensors: utom refuses."""
    state = torch.load(smoke.run / "model.pt", weights_only=True)
    for key in ("ema_ab", "g_ab"):
        last = list(state[key])[-1]
        state[key][last] = torch.full_like(state[key][last], float("nan"))
    broken = tmp_path / "broken"
    broken.mkdir()
    torch.save(state, broken / "model.pt")
    done = run_offline(tmp_path, "export", broken, "--bioimageio", tmp_path / "bad.zip")
    one_line_error(Result(done.returncode, done.stdout, done.stderr), str(broken), "NaN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_a_package_failing_bioimageio_test_is_not_written(smoke: Smoke, tmp_path, cli,
                                                         monkeypatch):
    """The verdict of the test decides: a failed one leaves one line and no file. (No package
    utom builds fails it, so the verdict is set here; the package and test still run.)"""
    from utom_core.export import bioimageio

    real = bioimageio.test_package
    verdicts = []

    def failing(package):
        verdicts.append(real(package))
        return "Reproduce test outputs from test inputs: output mismatch"

    monkeypatch.setattr(bioimageio, "test_package", failing)
    one_line_error(cli("export", smoke.run, "--bioimageio", tmp_path / "m.zip"),
                   "failed bioimageio.core's test", "output mismatch", "nothing was written")
    assert verdicts == [None]  # the real test ran on the real package and passed
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_export_leaves_nothing(smoke: Smoke, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([*CLI, "export", str(smoke.run), "--bioimageio", str(out / "m.zip")],
                            env=offline_env(tmp_path), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(out.glob(".m.zip.*.partial/test_output.npy")), proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert list(out.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_nothing(smoke: Smoke, disk):
    disk.fill(48 * 1024)  # room for the test tensors, not for the weights
    done = run_offline(disk.root.parent, "export", smoke.run, "--bioimageio",
                       disk.work / "m.zip")
    assert done.returncode == 1, done.stderr
    one_line_error(Result(done.returncode, done.stdout, done.stderr), "m.zip", NO_SPACE,
                   "nothing was written")
    assert list(disk.work.iterdir()) == []


def test_without_bioimageio_core_the_export_says_how_to_install_it(smoke: Smoke, tmp_path):
    code = "import sys; sys.modules['bioimageio'] = None; from utom_core.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "export", str(smoke.run), "--bioimageio",
                           str(tmp_path / "m.zip")], capture_output=True, text=True,
                          env=offline_env(tmp_path), timeout=120)
    one_line_error(Result(done.returncode, done.stdout, done.stderr), "utom[bioimageio]")
    assert list(tmp_path.glob("*.zip")) == []


def test_a_pydantic_too_new_for_bioimageio_spec_is_one_line_with_the_fix(smoke: Smoke,
                                                                        tmp_path):
    """A plain `pip install bioimageio.core` brings a pydantic its pinned spec cannot save
    packages under: said before any work, with the command that fixes it (the versions a
    user would have, reported by a patched importlib.metadata)."""
    versions = {"pydantic": "2.14.4", "bioimageio.spec": "0.5.12.0"}
    code = ("import importlib.metadata as m; real = m.version; "
            f"m.version = lambda name: {versions!r}.get(name) or real(name); "
            "from utom_core.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, "export", str(smoke.run), "--bioimageio",
                           str(tmp_path / "m.zip")], capture_output=True, text=True,
                          env=offline_env(tmp_path), timeout=120)
    one_line_error(Result(done.returncode, done.stdout, done.stderr), "pydantic 2.14.4",
                   "bioimageio.spec 0.5.12.0", "utom[bioimageio]")
    assert list(tmp_path.glob("*.zip")) == []


def test_a_one_sided_cut_run_exports_and_passes_bioimageio_test(smoke: Smoke, tmp_path):
    """Export reads the A → B generator only, so a method without F exports like any run."""
    run = tmp_path / "cut"
    trained = run_offline(tmp_path, "train", "denoise", "--a", smoke.a[0], "--b", smoke.b[0],
                          "--out", run, "--method", "cut", "--budget", "smoke", "--set",
                          "n_blocks=1", "--set", "d_layers=2", "--set", "sample_pixels=5000")
    assert trained.returncode == 0, trained.stderr
    package = tmp_path / "cut.zip"
    exported = run_offline(tmp_path, "export", run, "--bioimageio", package)
    assert exported.returncode == 0, exported.stderr
    assert "`cut`" in _member(package, "README.md").decode()
