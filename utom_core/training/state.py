"""Each rank's own part of a checkpoint: image pools, RNG states, the tile streams' position.

The networks and optimisers are the same on every rank (DDP); these are not, so rank 0 gathers
every rank's part into the checkpoint, and each resumed rank takes back its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from utom_core.data.pipeline import TileStreams
from utom_core.errors import UtomError
from utom_core.methods.pool import ImagePool
from utom_core.training.distributed import Ranks


def rank_state(pools: tuple[ImagePool, ImagePool], rng: np.random.Generator,
               streams: TileStreams, device: torch.device) -> dict[str, Any]:
    state = dict(pool_a=pools[0].state_dict(), pool_b=pools[1].state_dict(),
                 rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(),
                 streams={"a": streams.position, "b": streams.position})
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def own_part(state: dict[str, Any], ranks: Ranks) -> dict[str, Any]:
    """This rank's part of a checkpoint (one process's part sits at the top level in
    checkpoints from before torchrun; they resumed at the stream position of their iteration)."""
    parts = state.get("ranks", [{"streams": {"a": state["iteration"]}, **state}])
    if len(parts) != ranks.world:
        raise UtomError(f"the run was trained by {len(parts)} process(es); resume it with as "
                        f"many (torchrun --nproc-per-node …), not {ranks.world}")
    return parts[ranks.rank]


def restore_rank_state(part: dict[str, Any], pools: tuple[ImagePool, ImagePool],
                       rng: np.random.Generator, streams: TileStreams,
                       device: torch.device) -> None:
    pools[0].load_state_dict(part["pool_a"], device)
    pools[1].load_state_dict(part["pool_b"], device)
    rng.bit_generator.state = part["rng"]
    torch.set_rng_state(part["torch_rng"])
    if "cuda_rng" in part and device.type == "cuda":
        torch.cuda.set_rng_state(part["cuda_rng"], device)
    streams.position = int(part["streams"]["a"])
