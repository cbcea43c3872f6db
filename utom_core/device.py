"""Where to compute: the one place a ``device`` setting becomes a torch device."""

from __future__ import annotations

import torch

from utom_core.errors import UtomError


def resolve_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise UtomError("--set device=cuda: no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
