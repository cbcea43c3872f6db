"""Where to compute: the one place a ``device`` setting becomes a torch device."""

from __future__ import annotations

import torch

from utom_core.errors import UtomError


def resolve_device(setting: str, option: str = "--set device") -> torch.device:
    """``setting`` (auto, cpu, cuda) as a device; ``option`` names where the user gave it
    (training: ``--set device``; prediction: ``--device``), so a refusal points there."""
    if setting == "cuda" and not torch.cuda.is_available():
        sep = "=" if option.startswith("--set") else " "
        raise UtomError(f"{option}{sep}cuda: no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
