"""Runs planned by time (--minutes): the arithmetic, and that a planned run trains exactly as a
run given the planned count would, resumed or not."""

from __future__ import annotations

import json

from helpers import DENOISE, TINY, assert_same, train, weights

from utom_core.config import TrainConfig
from utom_core.training.time_plan import MAX_ITERATIONS, Costs, Plan, planned_iterations

PERIODS = dict(checkpoint_every=10, preview_every=20, val_every=50)


def test_the_plan_fills_the_time_with_steps_and_periodic_writes():
    cfg = TrainConfig(**PERIODS)
    costs = Costs(step=0.1, checkpoint=1.0, preview=2.0, validation=5.0)
    # per iteration 0.1 + 0.1 + 0.1 + 0.1 = 0.4 s; 3 s of the end's checkpoint and preview
    assert planned_iterations(403.2, costs, cfg) == 1000
    assert planned_iterations(403.05, Costs(step=0.1), cfg) == 4030


def test_the_plan_is_at_least_one_iteration_and_at_most_the_settings_bound():
    cfg = TrainConfig(**PERIODS)
    assert planned_iterations(0.5, Costs(step=10.0, checkpoint=5.0), cfg) == 1
    assert planned_iterations(1e9, Costs(step=1e-6), cfg) == MAX_ITERATIONS


def test_the_plan_says_what_it_measured():
    text = str(Plan(1234, 30, Costs(step=0.25, checkpoint=1.5), trial_seconds=4.0))
    assert text.startswith("planned 1234 iterations to fill 30 min (step 0.25 s, checkpoint 1.5 s")


def test_a_planned_run_trains_as_the_planned_count_would_and_resumes_to_it(tmp_path, blob_tiffs):
    """The trial leaves the trainer as it found it and the schedules (LR, ρ) follow the planned
    count, which the run records: stopped after one iteration and resumed, it trains up to that
    count, to the weights of a run given it by --iterations."""
    paths = blob_tiffs["a"], blob_tiffs["b"]
    planned = TrainConfig(**TINY, minutes=0.004, seed=5)
    first = train(DENOISE, planned, tmp_path / "planned", *paths, show_progress=False, stop_at=1)
    saved = json.loads((tmp_path / "planned" / "config.json").read_text())
    count = saved["iterations"]
    assert first.iteration == 1 and saved["minutes"] == 0.004
    resumed = train(DENOISE, planned, tmp_path / "planned", resume=True, show_progress=False)
    assert resumed.iteration == count
    given = TrainConfig(**TINY, iterations=count, seed=5)
    train(DENOISE, given, tmp_path / "given", *paths, show_progress=False)
    assert_same(weights(tmp_path / "planned"), weights(tmp_path / "given"))
    assert json.loads((tmp_path / "given" / "config.json").read_text())["images_per_epoch"] \
        == saved["images_per_epoch"]
