"""PatchNCE (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020): a patch of the output should match the input patch at the same place, against
the other patches of the same image, in the features of the generator's own encoder.

For each encoder tap, the same random positions are taken from the input's and the output's
features, projected by a small MLP per tap and L2-normalised; the loss is the cross-entropy
of picking the same-place patch among all sampled ones, with similarities over a
temperature (0.07). Positions are drawn from the run's checkpointed generator, so a resumed
run samples the same patches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PROJECTION = 256
"""Width of the projection heads (CUT's netF_nc)."""


class ProjectionHeads(nn.Module):
    """One two-layer MLP per encoder tap (CUT's PatchSampleF with use_mlp)."""

    def __init__(self, channels: list[int], width: int = PROJECTION) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, width), nn.ReLU(inplace=True), nn.Linear(width, width))
            for c in channels)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, features: list[torch.Tensor],
                positions: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, S, width) normalised projections of each tap's features at ``positions``."""
        out = []
        for head, feature, where in zip(self.heads, features, positions, strict=True):
            flat = feature.flatten(2).transpose(1, 2)  # (B, H*W, C)
            out.append(F.normalize(head(flat[:, where].float()), dim=-1))
        return out


def sample_positions(features: list[torch.Tensor], count: int,
                     rng: np.random.Generator) -> list[torch.Tensor]:
    """``count`` distinct positions per tap (all of a smaller map), drawn from ``rng``."""
    positions = []
    for feature in features:
        size = feature.shape[2] * feature.shape[3]
        picked = rng.permutation(size)[:min(count, size)]
        positions.append(torch.from_numpy(picked).to(feature.device))
    return positions


def patch_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over patches of each image: (B, S, D) queries against (B, S, D) keys (not
    differentiated), the same index being the positive."""
    logits = torch.bmm(query, key.detach().transpose(1, 2)) / temperature  # (B, S, S)
    batch, patches = logits.shape[:2]
    target = torch.arange(patches, device=logits.device).repeat(batch)
    return F.cross_entropy(logits.reshape(batch * patches, patches), target)


def patch_nce_loss(encode, heads: nn.Module, source: torch.Tensor,
                   output: torch.Tensor, count: int, temperature: float,
                   rng: np.random.Generator, flipped: bool = False) -> torch.Tensor:
    """Mean PatchNCE over the taps between ``source`` and the generator's ``output`` of it;
    ``flipped``: the output was made from the mirrored source (FastCUT's flip equivariance),
    so its features are mirrored back before comparing. ``heads``: the ``ProjectionHeads``,
    as the step runs them (DDP-wrapped, compiled)."""
    keys = encode(source)
    queries = encode(output)
    if flipped:
        queries = [torch.flip(q, dims=[3]) for q in queries]
    positions = sample_positions(keys, count, rng)
    key_patches, query_patches = heads(keys, positions), heads(queries, positions)
    losses = [patch_nce(q, k, temperature)
              for q, k in zip(query_patches, key_patches, strict=True)]
    return torch.stack(losses).mean()
