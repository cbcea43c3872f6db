"""Training tiles through ``torch.utils.data``: one endless stream of batches per domain.

Batch k of a stream is drawn with a generator of its own, seeded from (seed, rank, domain, k),
and worker w of W draws batches w, w + W, w + 2W, … which the loader hands on in order. The
stream is therefore a function of those four numbers alone: the same with 0 workers or 8, and a
resumed run continues it at the batch it had reached (the checkpoint records the position).
Workers read their own handles of the images, pinned memory and non-blocking copies carry the
batches to a GPU, and the training step never waits for a file while a worker can read ahead.
"""

from __future__ import annotations

import copy
import itertools
import multiprocessing
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from utom_core.data.sampling import TileSampler
from utom_core.errors import UtomError, first_line

STREAM_KEY = 2
"""Second word of every tile seed ([seed, 1] fits the normalisations; see training.meta)."""


@dataclass(frozen=True)
class StreamFailure:
    """What a worker sends instead of a batch it could not read (an exception raised in a
    worker would reach the trainer as the loader's multi-line report)."""

    message: str
    exit_code: int


class TileFailure(UtomError):
    def __init__(self, failure: StreamFailure) -> None:
        super().__init__(failure.message)
        self.exit_code = failure.exit_code


def batch_seed(seed: int, rank: int, domain: int, position: int) -> list[int]:
    """The seed of one batch: the stream's key and the batch's position in it."""
    return [seed, STREAM_KEY, rank, domain, position]


class TileStream(IterableDataset):
    """Batches of one domain's training tiles, from ``start`` on, forever."""

    def __init__(self, sampler: TileSampler, batch: int, seed: int, rank: int, domain: int,
                 start: int) -> None:
        self.sampler, self.batch, self.start = sampler, batch, start
        self.key = (seed, rank, domain)

    def __iter__(self) -> Iterator[torch.Tensor | StreamFailure]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        sampler = self.sampler
        if info is not None:  # a worker process: its own file handles
            sampler = copy.copy(sampler)
            sampler.images = sampler.images.reopened()
        for position in itertools.count(self.start + worker, workers):
            rng = np.random.default_rng(batch_seed(*self.key, position))
            try:
                yield sampler.tile_batch(rng, self.batch)
            except UtomError as err:
                yield StreamFailure(str(err), err.exit_code)
                return
            except OSError as err:
                yield StreamFailure(f"{err.filename or 'training image'}: cannot be read "
                                    f"({first_line(err)})", 1)
                return


def _quiet_worker(worker: int) -> None:
    """Ctrl-C and SIGTERM reach a whole process group: the trainer handles them (finish the
    step, save); its workers just go on until it shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_count(setting: int | str, device: torch.device) -> int:
    """Workers per domain: as set, or "auto": none on a CPU (they would take the cores the
    step needs); on CUDA up to 4, sharing the cores with the node's other training processes
    (torchrun's LOCAL_WORLD_SIZE) and leaving two per process for the step."""
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(4, ((cores or 1) // processes - 2) // 2))


class TileStreams:
    """Both domains' streams on the training device; ``position`` counts the batches the
    trainer has taken from each (prefetched ones are not counted: they are drawn again)."""

    def __init__(self, samplers: tuple[TileSampler, TileSampler], batch: int, seed: int,
                 rank: int, workers: int, device: torch.device) -> None:
        if workers and "fork" not in multiprocessing.get_all_start_methods():
            raise UtomError(f"num_workers {workers}: tile workers need fork (Linux); set "
                            "num_workers=0 here")
        self.samplers, self.batch, self.seed, self.rank = samplers, batch, seed, rank
        self.workers, self.device = workers, device
        self.position = 0
        self._iterators: list[Iterator[Any]] | None = None

    def _loader(self, domain: int) -> DataLoader:
        stream = TileStream(self.samplers[domain], self.batch, self.seed, self.rank, domain,
                            self.position)
        return DataLoader(stream, batch_size=None, num_workers=self.workers,
                          pin_memory=self.device.type == "cuda",
                          multiprocessing_context="fork" if self.workers else None,
                          worker_init_fn=_quiet_worker if self.workers else None,
                          generator=torch.Generator())  # leaves the global torch RNG alone

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of each domain, on the device (copies may still be in flight)."""
        if self._iterators is None:
            self._iterators = [iter(self._loader(domain)) for domain in (0, 1)]
        batches = [next(iterator) for iterator in self._iterators]
        for batch in batches:
            if isinstance(batch, StreamFailure):
                raise TileFailure(batch)
        self.position += 1
        real_a, real_b = (b.to(self.device, non_blocking=True) for b in batches)
        return real_a, real_b

    def close(self) -> None:
        """Stop the workers (a later ``next`` starts new ones at ``position``)."""
        self._iterators = None
