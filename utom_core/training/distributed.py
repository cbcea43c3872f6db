"""Training across processes under ``torchrun``: the process group, DDP, what rank 0 decides.

Every rank runs the same loop on its own tiles (seeded from its rank) and DistributedDataParallel
averages the gradients, so the networks stay identical on every rank. Rank 0 alone writes the
run directory, checkpoints, logs, previews and validations, and alone talks (``console``); a
checkpoint holds every rank's own state (RNG, tile-stream position, image pools), gathered by
rank 0. NCCL carries the gradients on CUDA, gloo on CPU; small control messages (stop requests,
gathered state, rank 0's verdicts) always go over gloo, so they never wait on the GPU.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from utom_core.device import resolve_device
from utom_core.errors import UtomError, first_line

T = TypeVar("T")
TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for the slowest rank (rank 0 writing a large checkpoint)."""
LAST_WAIT = datetime.timedelta(minutes=2)
"""How long a finished rank waits for the others at its exit (see ``leave_together``)."""
RANK0_ANSWER = datetime.timedelta(seconds=3)
"""How long another rank waits for rank 0 to say that a peer died, before saying rank 0 did."""
PEER_FAILURES = ("Connection reset by peer", "Connection closed by peer", "Broken pipe",
                 "NCCL communicator was aborted", "DistBackendError", "Socket Timeout")
"""What a collective's error says when another process of the job has died."""
_CONTROL: list[Any] = []
"""The gloo group for control messages, once joined (a process is in one job at most)."""


class RankError(UtomError):
    """An error another rank (rank 0) reported: raised here with its exit code, said there."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: one process of one when not under torchrun."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    if not joined():
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def joined() -> bool:
    return bool(_CONTROL)


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device_setting: str) -> None:
    """Join the job's process group when torchrun started several processes (once; a no-op
    otherwise): NCCL for CUDA training, gloo on CPU."""
    if joined() or not launched():
        return
    cuda = resolve_device(device_setting).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        _CONTROL.append(dist.new_group(backend="gloo", timeout=TIMEOUT) if cuda else None)
    except (RuntimeError, ValueError) as err:
        raise UtomError(f"torchrun: cannot join the job's process group ({first_line(err)})"
                        ) from None
    atexit.register(dist.destroy_process_group)


def rank_device(device: torch.device) -> torch.device:
    """Each rank's own GPU (LOCAL_RANK); a CPU is shared."""
    if device.type == "cuda" and joined():
        return torch.device("cuda", ranks().local)
    return device


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in DDP when distributed (its parameters are broadcast from rank 0)."""
    if not joined():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (a stop request, say)."""
    if not joined():
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_CONTROL[0])
    return bool(value.item())


def gather(obj: T) -> list[T] | None:
    """Every rank's ``obj`` on rank 0, in rank order (None on the other ranks)."""
    if not joined():
        return [obj]
    found: list[Any] | None = [None] * ranks().world if ranks().main else None
    dist.gather_object(obj, found, dst=0, group=_CONTROL[0])
    return found


def barrier() -> None:
    if joined():
        dist.barrier(group=_CONTROL[0])


def share(value: T | None = None) -> T | None:
    """Rank 0's ``value`` on every rank (the other ranks give none)."""
    if not joined():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_CONTROL[0])
    return box[0]


def from_rank0(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0, its result on every rank. If it fails there, every rank
    fails with the same exit code (rank 0 alone says why), so no rank waits for the others."""
    if not joined():
        return make()
    box: list[Any] = [None]
    if ranks().main:
        try:
            box[0] = ("ok", make())
        except BaseException as err:
            code = err.exit_code if isinstance(err, UtomError) else (
                130 if isinstance(err, KeyboardInterrupt) else 1)
            dist.broadcast_object_list([("error", (str(err), code))], src=0, group=_CONTROL[0])
            raise
    dist.broadcast_object_list(box, src=0, group=_CONTROL[0])
    kind, value = box[0]
    if kind == "error":
        raise RankError(*value)
    return value


def leave_together() -> None:
    """Have this process wait at its exit until every rank has reached its own: torchrun stops
    the rest of a job once one process ends with an error code (130 after Ctrl-C, too), and
    rank 0 may still be saying how the run ended."""
    if joined():
        atexit.register(_last_barrier)


def _last_barrier() -> None:
    with contextlib.suppress(Exception):  # a rank that died cannot come: leave anyway
        dist.monitored_barrier(group=_CONTROL[0], timeout=LAST_WAIT)


@contextlib.contextmanager
def peer_failures(outcome: Callable[[], str]) -> Iterator[None]:
    """A collective that fails because another rank died becomes one line (exit 1) saying so
    and what survives (``outcome()``), instead of the library's multi-line report."""
    try:
        yield
    except RuntimeError as err:
        said = [mark for mark in PEER_FAILURES if mark in str(err)] if joined() else []
        if not said:
            raise
        if not _rank0_says():  # rank 0 is gone: this rank, otherwise quiet, says so
            print(f"error: torchrun: rank 0 stopped ({said[0]}); {outcome()}", file=sys.stderr,
                  flush=True)
        raise RankError(f"torchrun: another process of the job stopped ({said[0]}); "
                        f"{outcome()}", 1) from None


def _rank0_says() -> bool:
    """Whether rank 0 says how the job ended (it is rank 0, or it answers through the job's
    store within ``RANK0_ANSWER``); the first other rank to find it gone says it instead."""
    key = "utom/rank0-says"
    store = dist.distributed_c10d._get_default_store()
    if ranks().main:
        with contextlib.suppress(Exception):
            store.set(key, "1")
        return True
    try:
        store.wait([key], RANK0_ANSWER)
        return True
    except Exception:  # rank 0 never answered: it is gone
        pass
    try:
        return store.add("utom/rank0-gone-said", 1) > 1
    except Exception:  # the store went with the job
        return False
