"""The supervised ceiling: L1 on aligned pairs, a run directory prediction can read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import blobs, build_generator, train

from utom_core.config import TrainConfig
from utom_core.data.sampling import TileWarning
from utom_core.domain import Domain
from utom_core.errors import InputError, UtomError
from utom_core.task import Task
from utom_core.trained import load_model
from utom_core.training.supervised import NoPairs, train_supervised

TASK = Task(name="toy-invert", summary="toy", domain_a=Domain(name="a", channels=1),
            domain_b=Domain(name="b", channels=1))
TINY = dict(ngf=8, unet_depth=2, tile=32, sample_pixels=5000, iterations=60, lr=1e-3)


@pytest.fixture
def inverted_pairs(tmp_path):
    """Images and their intensity-inverted twins: the target is a pixelwise function."""
    pairs = []
    rng = np.random.default_rng(0)
    for i in range(2):
        image = (1000 + 20000 * blobs(rng)).astype(np.uint16)
        a, b = tmp_path / f"a{i}.tif", tmp_path / f"b{i}.tif"
        tifffile.imwrite(a, image)
        tifffile.imwrite(b, (22000 - image.astype(np.int32)).astype(np.uint16))
        pairs.append((a, b))
    return pairs


def test_the_ceiling_learns_from_pairs_and_predicts_like_any_run(tmp_path, inverted_pairs):
    result = train_supervised(TASK, TrainConfig(**TINY), tmp_path / "run", inverted_pairs,
                              build_generator=build_generator, show_progress=False)
    losses = [json.loads(line)["l1"] for line in (result.run_dir / "log.jsonl").open()]
    assert len(losses) == 60 and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    predictor = load_model(result.run_dir, build_generator=build_generator)
    assert predictor.config.generator == "unet" and predictor.task == "toy-invert"


def test_same_seed_same_ceiling(tmp_path, inverted_pairs):
    cfg = TrainConfig(**TINY | {"iterations": 5})
    for name in ("r1", "r2"):
        train_supervised(TASK, cfg, tmp_path / name, inverted_pairs,
                         build_generator=build_generator, show_progress=False)
    one, two = (load_model(tmp_path / n, build_generator=build_generator).generator.state_dict()
                for n in ("r1", "r2"))
    assert all(np.array_equal(one[k].numpy(), two[k].numpy()) for k in one)


def test_misaligned_pairs_and_missing_pairs_are_refused(tmp_path, inverted_pairs):
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((64, 64), np.uint16))
    with pytest.raises(InputError, match=r"is not aligned with its input a0\.tif"):
        train_supervised(TASK, TrainConfig(**TINY), tmp_path / "run",
                         [(inverted_pairs[0][0], small)], build_generator=build_generator,
                         show_progress=False)
    with pytest.raises(NoPairs, match="no aligned pairs"):
        train_supervised(TASK, TrainConfig(**TINY), tmp_path / "run", [],
                         build_generator=build_generator, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_the_unpaired_trainer_refuses_the_supervised_method(tmp_path, inverted_pairs):
    a, b = zip(*inverted_pairs, strict=True)
    with pytest.raises(UtomError, match="method supervised trains on aligned pairs"):
        train(TASK, TrainConfig(**TINY, method="supervised"), tmp_path / "run", list(a),
              list(b), show_progress=False)


def test_run_supervised_refuses_user_data(cli, tmp_path, inverted_pairs):
    a, b = zip(*inverted_pairs, strict=True)
    result = cli("run", "denoise", "--method", "supervised", "--budget", "smoke",
                 "--a", a[0], "--b", b[1], "--out", tmp_path / "out")
    assert result.code != 0 and "does not take --a/--b" in result.err
    assert not (tmp_path / "out").exists()


def test_run_supervised_refuses_a_time_budget(cli, tmp_path):
    """The ceiling trains a fixed count: a time budget would be reported as planned and
    not kept."""
    result = cli("run", "denoise", "--method", "supervised", "--budget", "smoke", "--minutes",
                 "1", "--out", tmp_path / "out")
    assert result.code != 0 and "give --iterations instead" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_ceiling_fits_its_depth_to_the_tile(tmp_path, inverted_pairs):
    """The isotropic budget's 40-px tiles take 3 halvings, not the configured 4."""
    cfg = TrainConfig(**TINY | {"unet_depth": 4, "tile": 40, "iterations": 2})
    result = train_supervised(TASK, cfg, tmp_path / "run", inverted_pairs,
                              build_generator=build_generator, show_progress=False)
    assert load_model(result.run_dir, build_generator=build_generator).config.unet_depth == 3


def test_the_ceiling_is_scored_on_the_unpaired_runs_scale(tmp_path, inverted_pairs):
    """Fitted on the same A and B images with the same seed, the ceiling's normalisations and
    thresholds equal an unpaired run's, so their metrics share one scale."""
    a, b = (list(side) for side in zip(*inverted_pairs, strict=True))
    cfg = TrainConfig(**TINY | {"iterations": 1, "ndf": 8, "n_blocks": 1})
    unpaired = train(TASK, cfg, tmp_path / "unpaired", a, b, show_progress=False)
    ceiling = train_supervised(TASK, cfg, tmp_path / "ceiling", inverted_pairs, fit_on=(a, b),
                               build_generator=build_generator, show_progress=False)
    keys = ("normalisation_a", "normalisation_b", "threshold_a", "threshold_b")
    metas = [json.loads((r.run_dir / "run.json").read_text()) for r in (unpaired, ceiling)]
    assert [metas[0][k] for k in keys] == [metas[1][k] for k in keys]


def test_a_tile_larger_than_every_input_is_warned_of(tmp_path, inverted_pairs):
    """The ceiling trains on the same tiles as the unpaired methods, so it warns alike."""
    side = max(tifffile.imread(inverted_pairs[0][0]).shape)
    cfg = TrainConfig(**TINY | {"iterations": 1, "tile": 4 * side})
    with pytest.warns(TileWarning, match=rf"tile {4 * side} is larger than every a image"):
        train_supervised(TASK, cfg, tmp_path / "run", inverted_pairs,
                         build_generator=build_generator, show_progress=False)
