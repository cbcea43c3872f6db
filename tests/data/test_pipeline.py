"""The tile pipeline: the same tiles with any number of workers, resumable, quiet on faults."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import torch
from helpers import DENOISE, TINY, assert_same, train, weights
from reliability.checks import CLI, ONE_THREAD, wait_for
from reliability.checks import TINY as TINY_ARGS

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.data.images import DomainImages
from utom_core.data.pipeline import TileFailure, TileStreams, worker_count
from utom_core.data.sampling import TileSampler
from utom_core.domain import Domain, Normalisation
from utom_core.errors import InputError
from utom_core.saliency import SigmoidSaliency

DOMAIN = Domain(name="noisy", channels=1)


def samplers(paths, cls=TileSampler):
    norm = Normalisation(low=(1000.0,), high=(21000.0,), dtype=DOMAIN.dtype)
    images = DomainImages(paths, DOMAIN)
    sampler = cls(images, norm, SigmoidSaliency(0.0), 32, 0.05, True)
    return sampler, sampler


def batches(streams: TileStreams, count: int) -> list[torch.Tensor]:
    try:
        return [torch.cat(streams.next()) for _ in range(count)]
    finally:
        streams.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_stream_is_the_same_with_any_number_of_workers(blob_tiffs, workers):
    pair = samplers(blob_tiffs["a"])
    alone = batches(TileStreams(pair, 2, 7, 0, 0, torch.device("cpu")), 7)
    parallel = batches(TileStreams(pair, 2, 7, 0, workers, torch.device("cpu")), 7)
    assert all(torch.equal(x, y) for x, y in zip(alone, parallel, strict=True))
    assert not torch.equal(alone[0], alone[1])  # every batch its own draw
    other_rank = batches(TileStreams(pair, 2, 7, 1, workers, torch.device("cpu")), 1)
    assert not torch.equal(other_rank[0], alone[0])  # each rank its own tiles


def test_a_stream_continues_where_its_position_says(blob_tiffs):
    pair = samplers(blob_tiffs["a"])
    whole = batches(TileStreams(pair, 1, 3, 0, 2, torch.device("cpu")), 6)
    later = TileStreams(pair, 1, 3, 0, 2, torch.device("cpu"))
    later.position = 4
    assert all(torch.equal(x, y) for x, y in zip(batches(later, 2), whole[4:], strict=True))


def test_the_pipeline_leaves_the_global_torch_rng_alone(blob_tiffs):
    before = torch.get_rng_state()
    batches(TileStreams(samplers(blob_tiffs["a"]), 1, 0, 0, 2, torch.device("cpu")), 2)
    assert torch.equal(torch.get_rng_state(), before)


class Unreadable(TileSampler):
    def tile_batch(self, rng, batch):
        raise InputError(self.images.paths[0], "cannot be read (truncated)")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_tile_a_worker_cannot_read_is_one_user_error(blob_tiffs, workers):
    streams = TileStreams(samplers(blob_tiffs["a"], Unreadable), 1, 0, 0, workers,
                          torch.device("cpu"))
    with pytest.raises(TileFailure, match=r"a0\.tif: cannot be read \(truncated\)$") as err:
        batches(streams, 1)
    assert err.value.exit_code == 2


def test_workers_are_none_on_a_cpu_by_default():
    assert worker_count("auto", torch.device("cpu")) == 0
    assert worker_count(3, torch.device("cpu")) == 3


def test_training_with_workers_is_bit_identical_and_resumes_exactly(tmp_path, blob_tiffs):
    cfg = TrainConfig(**TINY, iterations=8, seed=4)
    a, b = blob_tiffs["a"], blob_tiffs["b"]
    train(DENOISE, cfg, tmp_path / "inline", a, b, show_progress=False)
    with_workers = cfg.model_copy(update={"num_workers": 2})
    train(DENOISE, with_workers, tmp_path / "workers", a, b, show_progress=False)
    assert_same(weights(tmp_path / "inline"), weights(tmp_path / "workers"))
    train(DENOISE, with_workers, tmp_path / "resumed", a, b, stop_at=3, show_progress=False)
    train(DENOISE, with_workers, tmp_path / "resumed", resume=True, show_progress=False)
    assert_same(weights(tmp_path / "inline"), weights(tmp_path / "resumed"))
    state = torch.load(tmp_path / "resumed" / trained.CHECKPOINT_FILE, weights_only=True)
    assert state["ranks"][0]["streams"] == {"a": 8, "b": 8}


@pytest.mark.slow
def test_ctrl_c_with_workers_is_one_message_and_a_checkpoint(tmp_path, blob_tiffs):
    """A terminal's Ctrl-C reaches the workers too (one process group): they go on quietly
    until the trainer, having saved, shuts them down."""
    run = tmp_path / "run"
    args = ["train", "denoise", "--a", *blob_tiffs["a"][:1], "--b", *blob_tiffs["b"][:1],
            "--out", run, *TINY_ARGS, "--iterations", "5000", "--set", "log_every=1",
            "--set", "num_workers=2"]
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen([*CLI, *map(str, args)], env={**os.environ, **ONE_THREAD},
                                start_new_session=True, stderr=stderr)
        try:
            wait_for(lambda: (run / trained.LOG_FILE).exists()
                     and len((run / trained.LOG_FILE).read_text().splitlines()) >= 2, proc)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(60)
        finally:
            proc.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert code == 130, err
    assert err.count("interrupt: saving a checkpoint") == 1, err
    assert "Traceback" not in err and "DataLoader" not in err
    stopped = int(err.split("interrupted at iteration ")[1].split(";")[0])
    assert torch.load(run / trained.CHECKPOINT_FILE, weights_only=True)["iteration"] == stopped
