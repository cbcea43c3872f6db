"""The white balance: one gain per channel, fitted on each saved model, that gives a
bright-field target's outputs the target images' background colour, and changes no weight."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from conftest import write_blob_tiffs
from helpers import TINY, Identity, assert_same, build_generator, resolved, train
from training.test_model_choice import toy_stain
from training.test_validation import held_out

from utom_core.checkpoints import load_torch, save_torch
from utom_core.config import TrainConfig
from utom_core.data.background import background_colour, background_median
from utom_core.data.images import DomainImages
from utom_core.domain import Domain, Normalisation, PixelType, Polarity
from utom_core.errors import InputError
from utom_core.export.bioimageio import export_bioimageio
from utom_core.inference import PredictOptions, Predictor, predict_file
from utom_core.io import read_image
from utom_core.trained import load_model
from utom_core.training.trainer import Trainer
from utom_core.training.white_balance import BalanceFit, WhiteBalance, output_gains

EIGHT_BIT = Normalisation(low=(0.0,) * 3, high=(255.0,) * 3, dtype=PixelType.uint8)
HE = Domain(name="he", channels=3, dtype=PixelType.uint8, background=Polarity.bright,
            threshold=220.0)


def unit(rgb: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([2 * v / 255 - 1 for v in rgb]).view(1, 3, 1, 1)


class Painter(Identity):
    """Paints background (input ≤ 0) a bright near-white and content purple."""

    def __init__(self, background: tuple[float, ...] = (247.0, 247.0, 246.0)) -> None:
        super().__init__(1)
        self.out_channels = 3
        self.background = background

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content = (x > 0).float()
        return content * unit((150.0, 60.0, 140.0)) + (1 - content) * unit(self.background)


def half_content(side: int = 64) -> np.ndarray:
    image = -np.ones((1, side, side), np.float32)
    image[..., : side // 2] = 1.0
    return image


GLASS = (241.0, 238.0, 241.0)


def fit_on(*images: np.ndarray) -> BalanceFit:
    """A fit on ``images`` (in order of preference) to the glass colour ``GLASS``."""
    return BalanceFit(tuple((lambda image=image: [image]) for image in images), EIGHT_BIT,
                      HE.saliency(EIGHT_BIT), tuple(float(v) for v in unit(GLASS).flatten()))


def test_the_gain_maps_the_predicted_background_onto_the_target_colour():
    gains = output_gains(Painter(), fit_on(half_content()), torch.device("cpu"))
    assert gains is not None
    np.testing.assert_allclose(gains, np.array(GLASS) / (247.0, 247.0, 246.0), rtol=1e-5)


def test_inputs_with_too_little_background_give_way_to_the_next():
    """A held-out crop that is all tissue but for a sliver (under 1 %) fits nothing; the
    training images, next in line, do; with nothing else, no gain."""
    sliver = np.ones((1, 64, 64), np.float32)
    sliver[..., :1, :20] = -1.0  # 20 of 4096 pixels
    fallback = half_content()
    assert output_gains(Painter(), fit_on(sliver), torch.device("cpu")) is None
    np.testing.assert_allclose(output_gains(Painter(), fit_on(sliver, fallback), "cpu"),
                               output_gains(Painter(), fit_on(fallback), "cpu"))


def test_implausible_gains_are_refused():
    """A generator whose background is far from any glass (here grey, 110) is not balanced
    into one: the gain would be 2.2."""
    grey = Painter(background=(110.0, 110.0, 110.0))
    assert output_gains(grey, fit_on(half_content()), torch.device("cpu")) is None


def test_the_median_is_the_glass_where_the_mean_takes_in_pale_rims(tmp_path):
    """Glass on 60 % of the background, a pale rim (still above the threshold) on 40 %: the
    median is the glass; the mean, which the background term uses, is pulled down."""
    rgb = np.full((200, 200, 3), (241, 238, 241), np.uint8)
    rgb[:, :80] = (226, 224, 226)
    rgb[80:120, 100:140] = (150, 60, 140)  # tissue
    tifffile.imwrite(tmp_path / "he.tif", rgb, photometric="rgb")
    images = DomainImages([tmp_path / "he.tif"], HE)
    saliency = HE.saliency(EIGHT_BIT)
    try:
        median = background_median([EIGHT_BIT.apply(rgb.transpose(2, 0, 1))], saliency)
        mean = background_colour(images, EIGHT_BIT, saliency)
    finally:
        images.close()
    assert median is not None and mean is not None
    raw_median = (np.array(median) + 1) / 2 * 255
    raw_mean = (np.array(mean) + 1) / 2 * 255
    np.testing.assert_allclose(raw_median, (241, 238, 241), atol=0.5)
    assert (raw_mean < raw_median - 4).all()


def test_only_bright_targets_are_balanced_and_held_out_images_come_first(tmp_path, blob_tiffs):
    """Stain: A (autofluorescence) is dark, so F: B → A gets no balance; G: A → B is fitted
    on the validation crops, then on A's training images."""
    rgb, task = toy_stain(tmp_path)
    a = DomainImages(blob_tiffs["a"], task.domain_a)
    b = DomainImages([rgb], task.domain_b)
    norm_a = Normalisation(low=(0.0,), high=(1.0,), dtype=PixelType.uint16)
    saliency_a = task.domain_a.saliency(norm_a, 0.5)
    validator = SimpleNamespace(crops=[SimpleNamespace(raw=np.zeros((1, 40, 24), np.uint16))])
    try:
        side_a, side_b = (a, norm_a, saliency_a), (b, EIGHT_BIT, HE.saliency(EIGHT_BIT))
        balance = WhiteBalance.of_run(side_a, side_b, validator, torch.device("cpu"))
        assert set(balance.fits) == {"ab"}
        held_out, training = balance.fits["ab"].inputs
        assert [x.shape for x in held_out()] == [(1, 40, 24)]
        assert len(list(training())) == len(a.planes)
        unvalidated = WhiteBalance.of_run(side_a, side_b, None, torch.device("cpu"))
        assert list(unvalidated.fits["ab"].inputs[0]()) == []
    finally:
        a.close()
        b.close()


def test_a_fit_is_kept_for_its_iteration_until_the_weights_are_replaced(tmp_path, blob_tiffs):
    """Files saved at one iteration share one fit; a state loaded into the trainer (a resume,
    the --minutes trial undone) drops it, so gains never outlive the weights they fit."""
    rgb, task = toy_stain(tmp_path)
    cfg = TrainConfig(**TINY, iterations=4, seed=2, threshold_b=150.0)
    run = resolved(task, cfg)
    trainer = Trainer(task, cfg, tmp_path / "run", blob_tiffs["a"], [rgb], method=run.method,
                      build_generator=run.build_generator)
    try:
        first = trainer.model_state()["white_balance"]
        with torch.no_grad():
            for parameter in trainer.ema_ab.parameters():
                parameter.mul_(0.5)
        assert trainer.model_state()["white_balance"] == first  # the same iteration: kept
        trainer.load_state_dict(trainer.state_dict())
        assert trainer.model_state()["white_balance"]["ema_ab"] != first["ema_ab"]
    finally:
        trainer.streams.close()
        trainer.images_a.close()
        trainer.images_b.close()


@pytest.fixture(scope="module")
def stain_runs(tmp_path_factory):
    """The same tiny stain run with the balance on and off, validated on a held-out image
    (B's threshold low enough that an untrained generator's grey counts as background)."""
    root = tmp_path_factory.mktemp("balance")
    rgb, task = toy_stain(root)
    blob_tiffs = write_blob_tiffs(root)
    noisy, _ = held_out(root)
    runs = {}
    for on in (True, False):
        cfg = TrainConfig(**TINY, iterations=4, seed=2, val_every=2, threshold_b=150.0,
                          white_balance=on)
        runs[on] = root / f"run-{on}"
        train(task, cfg, runs[on], blob_tiffs["a"], [rgb], show_progress=False,
              val=[(noisy, None)])
    return runs, noisy


def test_the_balance_changes_no_weight_and_every_model_file_carries_it(stain_runs):
    runs, _ = stain_runs
    on, off = (load_torch(runs[flag] / "model.pt") for flag in (True, False))
    for name in ("g_ab", "ema_ab", "g_ba", "ema_ba"):
        assert_same(on[name], off[name])
    assert set(on["white_balance"]) == {"g_ab", "ema_ab"}  # B → A's target is dark
    assert "white_balance" not in off
    for file in ("model_best.pt", "checkpoints/last.pt"):
        assert set(load_torch(runs[True] / file)["white_balance"]) == {"g_ab", "ema_ab"}


def test_predictions_take_the_gains_and_the_content_map_does_not(stain_runs, tmp_path):
    runs, noisy = stain_runs
    balanced = load_model(runs[True], build_generator=build_generator)
    plain = load_model(runs[False], build_generator=build_generator)
    assert balanced.output_gains is not None and plain.output_gains is None
    assert balanced.target_norm == plain.target_norm  # what T judges outputs by
    outputs = {}
    for name, model in (("balanced", balanced), ("plain", plain)):
        outputs[name] = tifffile.imread(predict_file(
            Predictor(model, PredictOptions(views=1)), noisy, tmp_path / name,
            show_progress=False)).astype(np.float64)
    gains = np.array(balanced.output_gains)
    expected = np.clip(outputs["plain"] * gains, 0, 255)  # HWC RGB
    rounding = 0.5 + 0.5 * gains.max()  # the balanced output's, and the plain one's times g
    assert np.abs(outputs["balanced"] - expected).max() <= rounding + 1e-6
    assert np.abs(outputs["balanced"] - outputs["plain"]).max() >= 1.0


def test_predict_without_the_balance_gives_the_plain_output(stain_runs, tmp_path, cli):
    """``utom predict --no-white-balance``: the network's output as trained, the same as a
    run trained without the balance gives."""
    runs, noisy = stain_runs
    written = {}
    for name, run, flags in (("off", runs[True], ["--no-white-balance"]),
                             ("plain", runs[False], []), ("on", runs[True], [])):
        done = cli("predict", run, noisy, "--out", tmp_path / f"{name}.tif", *flags)
        assert done.code == 0, done.err
        written[name] = tifffile.imread(tmp_path / f"{name}.tif")
    np.testing.assert_array_equal(written["off"], written["plain"])
    assert not np.array_equal(written["on"], written["plain"])


@pytest.mark.parametrize("gains", [[1.0, -0.5, 1.0], [1.0, 1.0], "1.0"])
def test_a_model_file_with_broken_gains_is_refused(stain_runs, tmp_path, gains):
    runs, _ = stain_runs
    state = load_torch(runs[True] / "model.pt")
    state["white_balance"]["ema_ab"] = gains
    save_torch(state, tmp_path / "model.pt")
    with pytest.raises(InputError, match="white balance of ema_ab"):
        load_model(tmp_path / "model.pt", build_generator=build_generator)


@pytest.mark.slow
def test_a_cluster_and_the_zoo_package_take_the_same_gains(stain_runs, tmp_path, cli):
    """The other prediction surfaces: Dask workers load the model file, the zoo package holds
    the gains in its output scale; both give ``utom predict``'s balanced output."""
    from export.test_bioimageio_export import _array, _member, _zoo_prediction

    runs, noisy = stain_runs
    single, cluster = tmp_path / "single.tif", tmp_path / "cluster.ome.zarr"
    assert cli("predict", runs[True], noisy, "--out", single).code == 0
    done = cli("predict", runs[True], noisy, "--out", cluster, "--scheduler", "local:1")
    assert done.code == 0, done.err
    np.testing.assert_array_equal(read_image(cluster), read_image(single))
    plain, unbalanced = tmp_path / "plain.tif", tmp_path / "unbalanced.ome.zarr"
    assert cli("predict", runs[False], noisy, "--out", plain).code == 0
    done = cli("predict", runs[True], noisy, "--out", unbalanced, "--scheduler", "local:1",
               "--no-white-balance")
    assert done.code == 0, done.err
    np.testing.assert_array_equal(read_image(unbalanced), read_image(plain))

    package = tmp_path / "stain.zip"
    export_bioimageio(runs[True], package, build_generator=build_generator)
    test_input = _array(package, "test_input.npy")
    tifffile.imwrite(tmp_path / "test_input.tif", test_input[0, 0])
    assert cli("predict", runs[True], tmp_path / "test_input.tif", "--out",
               tmp_path / "utom.tif").code == 0
    utom = np.moveaxis(tifffile.imread(tmp_path / "utom.tif"), -1, 0).astype(np.float64)
    zoo = _zoo_prediction(package, "pytorch_state_dict", test_input)[0]
    assert np.abs(np.clip(zoo, 0, 255) - utom).max() <= 0.5 + 1e-3
    assert "white balance" in _member(package, "README.md").decode()
