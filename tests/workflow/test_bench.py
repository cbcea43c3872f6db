"""`utom bench` at the smoke budget: every task (plus a plugin's) × method × seed, resumable."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import EXAMPLE_PLUGIN

from utom_core import plugins
from utom_tasks import BUILTIN_TASKS


@pytest.fixture
def example_plugin():
    """The example third-party plugin, registered in-process from its source folder."""
    spec = importlib.util.spec_from_file_location(
        "utom_example_task", EXAMPLE_PLUGIN / "utom_example_task" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "example-spots" in plugins.get_registry().tasks:  # installed for real (CI): use that
        yield None
        return
    plugins.add_plugin(module)
    try:
        yield module
    finally:
        plugins.remove_plugin(module)


@pytest.mark.slow
def test_bench_covers_every_task_method_and_seed_and_resumes(cli, tmp_path, example_plugin):
    out = tmp_path / "bench"
    result = cli("bench", "--budget", "smoke", "--seeds", "2", "--set", "iterations=2",
                 "--out", out)
    assert result.code == 0, result.err
    rows = json.loads((out / "bench.json").read_text())["runs"]
    tasks = {task.name for task in BUILTIN_TASKS} | {"example-spots"}
    methods = plugins.get_registry().methods
    assert {"utom", "cyclegan", "cut", "fastcut", "utom-cut", "supervised"} <= set(methods)
    expected = {f"{t}/{m}/seed{s}" for t in tasks for m in methods for s in range(2)}
    assert {row["key"] for row in rows} == expected
    status = {row["key"]: row["status"] for row in rows}
    assert status["stain-he/cyclegan-identity/seed0"] == "not applicable"
    assert status["label/cyclegan-identity/seed1"] == "not applicable"
    assert status["example-spots/supervised/seed0"] == "not applicable"  # no aligned pairs
    assert all(status[f"{t.name}/supervised/seed1"] == "ok" for t in BUILTIN_TASKS)
    failed = [row for row in rows if row["status"] == "failed"]
    assert not failed, failed[0]["error"]
    spots = next(r for r in rows if r["key"] == "example-spots/utom/seed0")
    assert "psnr" in spots["metrics"] and "ssim" in spots["metrics"]
    table = (out / "bench.md").read_text()
    assert "## example-spots" in table and "input (floor)" in table and "**" in table
    assert "| supervised (ceiling) |" in table
    assert (out / "bench_psnr.png").stat().st_size > 0

    before = {row["key"]: row["wall_seconds"] for row in rows if "wall_seconds" in row}
    (out / "speed.md").write_text("## Speed and memory\n\nfraction of peak 58.0%\n")
    again = cli("bench", "--budget", "smoke", "--seeds", "2", "--set", "iterations=2",
                "--out", out)
    assert again.code == 0
    rows = json.loads((out / "bench.json").read_text())["runs"]
    assert {row["key"]: row["wall_seconds"] for row in rows if "wall_seconds" in row} == before
    assert (out / "bench.md").read_text().rstrip().endswith("fraction of peak 58.0%")


def test_a_task_that_raises_is_recorded_not_fatal(cli, tmp_path, monkeypatch, fresh_registry):
    from utom_tasks import super_resolution

    def broken(workdir, seed):
        raise RuntimeError("demo data exploded")

    task = super_resolution.TASK.model_copy(update={"demo_data": broken})
    monkeypatch.setattr(super_resolution, "TASK", task)
    monkeypatch.setattr("utom_tasks.BUILTIN_TASKS",
                        tuple(task if t.name == "sr" else t for t in BUILTIN_TASKS))
    out = tmp_path / "bench"
    result = cli("bench", "--tasks", "sr,denoise", "--methods", "utom", "--seeds", "1",
                 "--budget", "smoke", "--set", "iterations=2", "--out", out)
    assert result.code == 0
    rows = {row["key"]: row for row in json.loads((out / "bench.json").read_text())["runs"]}
    assert rows["sr/utom/seed0"]["status"] == "failed"
    assert "demo data exploded" in rows["sr/utom/seed0"]["error"]
    assert rows["denoise/utom/seed0"]["status"] == "ok"
    assert "sr/utom/seed0 | failed" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_parallel_jobs_give_the_same_rows_as_one_process(cli, tmp_path):
    """--jobs runs each (task, method, seed) in a worker process with the same thread count
    as here (1 in the tests), so its metrics must equal the in-process run's bit for bit."""
    args = ("bench", "--tasks", "denoise,sr", "--methods", "utom,cyclegan", "--seeds", "1",
            "--budget", "smoke", "--set", "iterations=2")
    assert cli(*args, "--out", tmp_path / "inline").code == 0
    result = cli(*args, "--jobs", "2", "--out", tmp_path / "parallel")
    assert result.code == 0, result.err

    def metrics(out):
        rows = json.loads((out / "bench.json").read_text())["runs"]
        return {row["key"]: (row["status"], row.get("metrics")) for row in rows}

    parallel = metrics(tmp_path / "parallel")
    assert set(parallel) == {"denoise/utom/seed0", "denoise/cyclegan/seed0",
                             "sr/utom/seed0", "sr/cyclegan/seed0"}
    assert parallel == metrics(tmp_path / "inline")
    assert (tmp_path / "parallel" / "bench.md").exists()


def test_the_bench_budget_fits_each_tasks_data():
    """One preset for all tasks, adjusted where a task's planes are smaller than its tile."""
    from utom_core.config import Budget, build_config

    tasks = {task.name: task for task in BUILTIN_TASKS}
    tile = {name: build_config(*task.config_layers(Budget.bench)).tile
            for name, task in tasks.items()}
    assert tile["isotropic"] == 40 and tile["stain-he"] == 64
    assert all(build_config(*t.config_layers(Budget.bench)).iterations == 500
               for t in tasks.values())


def test_the_papers_claims_are_checked_both_ways():
    from utom_core.bench import claims

    table = {"denoise": {
        "utom": {"ssim": [0.70, 0.71, 0.72], "content_iou": [0.8, 0.8, 0.8]},
        "cyclegan": {"ssim": [0.50, 0.80, 0.40], "content_iou": [0.9, 0.9, 0.9]},
        "input (floor)": {"ssim": [0.55, 0.55, 0.55]},
    }}
    text = "\n".join(claims(table))
    assert "| denoise | UTOM ssim ≥ CycleGAN | 0.71 vs 0.5667 | holds |" in text
    assert "| denoise | UTOM ssim spread < CycleGAN | 1.1% vs 30.0% | holds |" in text
    assert "UTOM content IoU > CycleGAN | 0.800 vs 0.900 | **does not hold** |" in text
    assert "floor on ssim (0.55) | below: cyclegan 0.5667" not in text  # 0.567 is above
    table["denoise"]["cyclegan"]["ssim"] = [0.5, 0.5, 0.5]
    assert "| below: cyclegan 0.5 | **does not hold** |" in "\n".join(claims(table))


def test_a_ratio_beats_its_floor_by_coming_closer_to_one():
    """anisotropy 0.5 is further from isotropic than the input's 1.43, not "lower, better";
    the lateral resolution is to be kept, so it makes no floor claim."""
    from utom_core.bench import claims

    table = {"isotropic": {
        "utom": {"anisotropy": [1.2], "lateral_resolution": [2.7]},
        "cyclegan": {"anisotropy": [0.5], "lateral_resolution": [2.8]},
        "input (floor)": {"anisotropy": [1.43], "lateral_resolution": [2.66]},
    }}
    text = "\n".join(claims(table))
    assert "floor on anisotropy (1.43) | below: cyclegan 0.5 | **does not hold** |" in text
    assert "lateral_resolution" not in text
