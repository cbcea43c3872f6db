"""Where to compute: the one place a ``device`` setting becomes a torch device."""

from __future__ import annotations

import contextlib

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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 convolutions natively: a CUDA GPU that supports bf16,
    or a CPU with AVX512-BF16 or AMX tiles. Elsewhere bf16 would be emulated, slower than
    fp32, so autocast stays off."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


FUSED_ADAM_CPU = "2.4"
"""The torch release whose Adam has a fused kernel for CPU tensors."""


def fused_adam(device: torch.device) -> bool:
    """Whether torch's fused Adam kernel runs on ``device``: one pass over the parameters
    instead of a dozen, a quarter of the multi-tensor Adam's time in a CPU training step
    (docs/results/training-speed.md)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.__version__ >= FUSED_ADAM_CPU  # a TorchVersion


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``enabled`` and ``device`` runs bf16 natively (``native_bf16``), for
    training (``amp``) and prediction (``--amp``): about half a training step's time on such
    CPUs (docs/results/training-speed.md); never emulated."""
    if enabled and native_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
