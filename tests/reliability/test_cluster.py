"""``utom predict --scheduler``: bit-identical to one process, on a real LocalCluster of two
single-threaded worker processes (localhost only); a worker killed for real mid-run is
retried; an interrupted job leaves no output and ``--resume`` keeps what it verified."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import zarr
from helpers import validate_ome_zarr
from reliability.checks import (
    CLI,
    ONE_THREAD,
    Data,
    ctrl_c_reaches_it,
    leftovers,
    one_line_error,
    write_zarr,
)

from utom_core.inference import blocks
from utom_core.inference.dask import job_store
from utom_core.io import read_image

pytestmark = pytest.mark.xdist_group("dask-cluster")

distributed = pytest.importorskip("distributed", reason="needs utom[distributed]")
RNG = np.random.default_rng(0)
TILE = ("--tile", "64")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=50, env=ONE_THREAD)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Odd sizes, every plane tiled (frozen statistics sampled on the client); TIFF and
OME-Zarr inputs."""
    root = tmp_path_factory.mktemp("cluster-images")
    found = {"2d": root / "odd.tif", "3d": root / "volume.tif", "big": root / "big.tif"}
    tifffile.imwrite(found["2d"], RNG.integers(0, 30000, (301, 257)).astype(np.uint16))
    tifffile.imwrite(found["3d"], RNG.integers(0, 30000, (3, 150, 131)).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(found["big"], RNG.integers(0, 30000, (700, 650)).astype(np.uint16))
    found["zarr"] = write_zarr(root / "odd.ome.zarr", read_image(found["2d"]), chunk=50)
    return found


def _levels(path: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return [np.asarray(group[str(k)]) for k in range(len(list(group.array_keys())))]


def _same_as_one_process(cli, data: Data, image: Path, out: Path, *options: str) -> None:
    """Every level of the cluster's store equals one process's, bit for bit."""
    single = out.with_name("single-" + out.name)
    assert cli("predict", data.model, image, "--out", single, *options).code == 0
    mine, theirs = _levels(out), _levels(single)
    assert len(mine) == len(theirs) > 1
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("kind", "options"), [
    ("2d", ("--stitch", "crop")),
    ("zarr", ("--stitch", "crop")),
    ("3d", ("--stitch", "blend")),
    ("2d", ("--stitch", "blend", "--batch", "2", "--overlap", "0.4")),
])
@pytest.mark.slow
def test_the_cluster_writes_what_one_process_writes(cli, client, data, images, tmp_path, kind,
                                                    options):
    before = client.run(blocks.loads)
    out = tmp_path / "cluster.ome.zarr"
    result = cli("predict", data.model, images[kind], "--out", out, *TILE, *options,
                 "--scheduler", client.scheduler.address)
    assert result.code == 0, result.err
    validate_ome_zarr(out)
    _same_as_one_process(cli, data, images[kind], out, *TILE, *options)
    loaded = {w: n - before[w] for w, n in client.run(blocks.loads).items()}
    assert all(n <= 1 for n in loaded.values()), loaded  # once per worker, not per task
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_local_cluster_writes_ome_tiff_like_one_process(cli, data, images, tmp_path):
    out = tmp_path / "cluster.ome.tif"
    result = cli("predict", data.model, images["2d"], "--out", out, *TILE,
                 "--scheduler", "local:2")
    assert result.code == 0, result.err
    single = tmp_path / "single.ome.tif"
    assert cli("predict", data.model, images["2d"], "--out", single, *TILE).code == 0
    with tifffile.TiffFile(out) as a, tifffile.TiffFile(single) as b:
        for mine, theirs in zip(a.series[0].levels, b.series[0].levels, strict=True):
            np.testing.assert_array_equal(mine.asarray(), theirs.asarray())
    # beside the output only the job's record, which a later --resume checks it by
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".cluster.ome.tif.utom-job.json", "cluster.ome.tif", "single.ome.tif"]


@pytest.mark.slow
def test_replacing_a_prediction_on_the_cluster_removes_its_earlier_map(cli, client, data,
                                                                        images, tmp_path):
    """The cluster writes no maps; one left by an earlier prediction would describe the image
    the cluster replaced, so it goes (as in one process)."""
    out = tmp_path / "out.ome.zarr"
    assert cli("predict", data.model, images["2d"], "--out", out, *TILE, "--fidelity").code == 0
    assert (tmp_path / "out.fidelity.ome.zarr").is_dir()
    result = cli("predict", data.model, images["2d"], "--out", out, *TILE, "--overwrite",
                 "--scheduler", client.scheduler.address)
    assert result.code == 0, result.err
    assert "removed" in result.err and "out.fidelity.ome.zarr" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.ome.zarr.utom-job.json",
                                                          "out.ome.zarr"]


def _start(data: Data, image: Path, out: Path, client, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "predict", str(data.model), str(image), "--out", str(out),
                             *TILE, "--scheduler", client.scheduler.address, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD}, preexec_fn=ctrl_c_reaches_it)


def _marks(out: Path) -> list[Path]:
    folder = job_store(out) / blocks.MARKS
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _wait_for_units(job: subprocess.Popen, out: Path, count: int = 2) -> None:
    deadline = time.monotonic() + 240
    while len(_marks(out)) < count:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "no unit written in time"
        time.sleep(0.1)


def _idle(client) -> None:
    """Tasks a worker was running when its client left finish their unit: wait for them."""
    deadline = time.monotonic() + 60
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_the_output_is_whole(cli, client, data, images,
                                                                    tmp_path):
    out = tmp_path / "killed.ome.zarr"
    job = _start(data, images["big"], out, client)
    _wait_for_units(job, out)
    busy = None
    while busy is None:
        busy = next((w for w, tasks in client.processing().items() if tasks), None)
    pid = client.run(os.getpid, workers=[busy])[busy]
    os.kill(pid, signal.SIGKILL)  # a real worker process, killed while it computes
    assert not out.exists()
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0, err
    client.wait_for_workers(2, timeout=60)
    assert pid not in client.run(os.getpid).values()  # the nanny started a new worker
    validate_ome_zarr(out)
    _same_as_one_process(cli, data, images["big"], out, *TILE)
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_an_interrupted_job_leaves_no_output_and_resume_keeps_verified_units(cli, client, data,
                                                                             images, tmp_path):
    out = tmp_path / "resumed.ome.zarr"
    job = _start(data, images["big"], out, client)
    _wait_for_units(job, out, count=3)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130
    one_line_error(SimpleNamespace(code=130, err=err), str(job_store(out)), "--resume")
    _idle(client)
    assert not out.exists() and job_store(out).is_dir()

    again = cli("predict", data.model, images["big"], "--out", out, *TILE,
                "--scheduler", client.scheduler.address)
    one_line_error(again, str(out), "--resume", "--overwrite")
    assert not out.exists()

    store = job_store(out)
    array = zarr.open_array(str(store / "0"))
    kept = _marks(out)
    files = {m: store / "0" / array.metadata.encode_chunk_key(
        (0, *map(int, m.name.removesuffix(".json").split(".")))) for m in kept}
    damaged = files[kept[0]]
    damaged.write_bytes(damaged.read_bytes()[:-7])  # a unit that no longer matches its checksum
    stamps = {m: f.stat().st_mtime_ns for m, f in files.items()}

    resumed = cli("predict", data.model, images["big"], "--out", out, *TILE,
                  "--scheduler", client.scheduler.address, "--resume")
    assert resumed.code == 0, resumed.err
    assert f"{len(kept) - 1} of " in resumed.err and "already written and verified" in resumed.err
    validate_ome_zarr(out)
    _same_as_one_process(cli, data, images["big"], out, *TILE)
    assert leftovers(tmp_path) == []
    kept_files = {m: out / "0" / f.relative_to(store / "0") for m, f in files.items()}
    assert all(kept_files[m].stat().st_mtime_ns == stamps[m] for m in kept[1:])  # not redone


@pytest.mark.parametrize(("args", "needles"), [
    (("--resume",), ("--resume", "--scheduler")),
    (("--scheduler", "ssh://somewhere"), ("--scheduler", "tcp://HOST:PORT")),
    (("--scheduler", "local:none"), ("--scheduler", "local:N")),
])
def test_refused_cluster_options(cli, data, tmp_path, args, needles):
    result = cli("predict", data.model, data.a[0], "--out", tmp_path / "o.ome.zarr", *args)
    assert result.code == 2
    one_line_error(result, *needles)
    assert list(tmp_path.iterdir()) == []


def test_isotropic_models_stay_in_one_process(cli, data, tmp_path):
    result = cli("predict", data.iso_model, data.volume, "--out", tmp_path / "o.ome.zarr",
                 "--scheduler", "local:1")
    one_line_error(result, "--scheduler", "XZ/YZ")
    assert list(tmp_path.iterdir()) == []
    assert read_image(data.volume).shape == (1, 3, 40, 40)  # the input untouched
