"""Generators trained with the authors' code (the CycleGAN code UTOM builds on), in utom.

Their ``latest_net_G_A.pth`` is a plain state dict of a ResNet (``resnet_6blocks``,
``resnet_9blocks``) or U-Net (``unet_128``, ``unet_256``) generator, with instance or batch
norm, perhaps dropout, perhaps saved from ``DataParallel`` (keys prefixed ``module.``). The
layout is read off the keys and shapes, rebuilt as a utom generator, and every key checked
against it: a file of another layout is refused naming the first key that does not fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from utom_core.checkpoints import load_torch_file
from utom_core.config import TrainConfig
from utom_core.errors import InputError
from utom_core.networks.base import Generator, GeneratorBuilder
from utom_core.networks.norm import InstanceNorm

PREFIX = "module."
"""What ``torch.nn.DataParallel`` puts before every key."""
NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
"""Batch norm's running statistics (their test script, without ``--eval``, does not use them),
also found at instance norm layers in files written by PyTorch before 0.4."""
RESNET_FIRST_BLOCK = 10
"""Index of the first residual block in the ResNet's ``model`` sequence."""
WHAT = "generator state dict"


@dataclass(frozen=True)
class Layout:
    """The architecture a state dict of the authors' code describes."""

    generator: str
    """utom's generator of the same layout: ``resnet`` or ``cyclegan-unet``."""
    in_channels: int
    out_channels: int
    ngf: int
    levels: int
    """Residual blocks (ResNet) or nested levels (U-Net: 7 for unet_128, 8 for unet_256)."""
    batch_norm: bool
    dropout: bool

    @property
    def net_g(self) -> str:
        """The name of the layout in the authors' options (``--netG``)."""
        if self.generator == "resnet":
            return f"resnet_{self.levels}blocks"
        return f"unet_{2**self.levels}"

    def describe(self) -> str:
        norm = "batch" if self.batch_norm else "instance"
        return f"{self.net_g}, ngf {self.ngf}, {norm} norm" + (", dropout" if self.dropout else "")

    def settings(self) -> dict[str, Any]:
        """The TrainConfig settings of the same generator."""
        levels = {"n_blocks": self.levels} if self.generator == "resnet" else {
            "unet_depth": self.levels}
        return dict(generator=self.generator, ngf=self.ngf, upsampling="transpose",
                    residual=False, norm_affine=self.batch_norm, ema_decay=0.0, **levels)

    def to_theirs(self, name: str) -> str:
        """Their name of one of utom's parameters or modules (the U-Net's are the same)."""
        if self.generator != "resnet":
            return name
        found = re.fullmatch(r"(model\.\d+)\.body\.(\d+)(.*)", name)
        if not found:
            return name
        head, index, tail = found.groups()
        shifted = int(index) + 1 if self.dropout and int(index) >= 4 else int(index)
        return f"{head}.conv_block.{shifted}{tail}"  # their dropout sits before the 2nd pad


def _strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    return {key.removeprefix(PREFIX): value for key, value in state.items()}


def _shape(state: dict[str, torch.Tensor], key: str, path: Path, layout: str) -> torch.Size:
    """The shape of a convolution's weight that decides the layout (4-D, or refused)."""
    if key not in state:
        raise InputError(path, f"not the {layout} layout of the authors' code: missing key "
                               f"{key!r}")
    if state[key].ndim != 4:
        raise InputError(path, f"not the {layout} layout of the authors' code: key {key!r} has "
                               f"shape {tuple(state[key].shape)}, a convolution's weight is 4-D")
    return state[key].shape


def detect(state: dict[str, torch.Tensor], path: Path) -> Layout:
    """The layout the keys and shapes describe (errors name the key that decides it)."""
    batch_norm = any(k.endswith(".weight") and v.ndim == 1 for k, v in state.items())
    if any(".conv_block." in key for key in state):
        blocks = {int(m.group(1)) for key in state
                  if (m := re.match(r"model\.(\d+)\.conv_block\.", key))}
        n_blocks = max(blocks, default=RESNET_FIRST_BLOCK) - RESNET_FIRST_BLOCK + 1
        first = _shape(state, "model.1.weight", path, "ResNet generator")
        last = _shape(state, f"model.{RESNET_FIRST_BLOCK + n_blocks + 7}.weight", path,
                      f"resnet_{n_blocks}blocks generator")
        second_conv = state.get(f"model.{RESNET_FIRST_BLOCK}.conv_block.6.weight")
        dropout = second_conv is not None and second_conv.ndim == 4
        return Layout("resnet", first[1], last[0], first[0], n_blocks, batch_norm, dropout)
    if any(key.startswith("model.model.") for key in state):
        depth = max(key.count("model.") for key in state) - 1
        first = _shape(state, "model.model.0.weight", path, "U-Net generator")
        last = _shape(state, "model.model.3.weight", path, f"unet_{2**depth} generator")
        return Layout("cyclegan-unet", first[1], last[1], first[0], depth, batch_norm, False)
    first_key = next(iter(state), None)
    raise InputError(path, "not a generator of the authors' code (ResNet or U-Net layout): "
                           f"its first key {first_key!r} is in neither")


def _expected(layout: Layout, generator: Generator) -> tuple[dict[str, tuple[int, ...]],
                                                             set[str]]:
    """Their keys with the shapes that must be there, and the keys that may be (the conv biases
    batch norm makes them drop, norm statistics), in their naming."""
    required: dict[str, tuple[int, ...]] = {}
    optional: set[str] = set()
    output_bias = list(generator.state_dict())[-1]  # the last conv keeps its bias
    for key, value in generator.state_dict().items():
        theirs = layout.to_theirs(key)
        if layout.batch_norm and key.endswith(".bias") and key != output_bias and \
                not _is_norm(generator, key):
            optional.add(theirs)
        else:
            required[theirs] = tuple(value.shape)
    norms = [layout.to_theirs(name) for name, module in generator.named_modules()
             if isinstance(module, InstanceNorm)]
    optional |= {f"{norm}.{buffer}" for norm in norms for buffer in NORM_BUFFERS}
    return required, optional


def _is_norm(generator: Generator, key: str) -> bool:
    return isinstance(generator.get_submodule(key.rsplit(".", 1)[0]), InstanceNorm)


def _check(state: dict[str, torch.Tensor], required: dict[str, tuple[int, ...]],
           optional: set[str], layout: Layout, path: Path) -> None:
    where = f"not the {layout.net_g} generator layout of the authors' code"
    for key, value in state.items():
        if key not in required and key not in optional:
            raise InputError(path, f"{where}: unexpected key {key!r}")
        if key in required and tuple(value.shape) != required[key]:
            raise InputError(path, f"{where}: key {key!r} has shape {tuple(value.shape)}, "
                                   f"the layout needs {required[key]}")
    missing = next((key for key in required if key not in state), None)
    if missing is not None:
        raise InputError(path, f"{where}: missing key {missing!r}")


def _check_storage(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a tensor whose shape claims more numbers than the file holds for it (a stride-0
    view saved whole): its network would be built far bigger than the file."""
    for key, value in state.items():
        held = value.untyped_storage().nbytes() // max(value.element_size(), 1)
        if value.numel() > held:
            raise InputError(path, f"not a {WHAT}: key {key!r} claims shape "
                                   f"{tuple(value.shape)} but the file holds {held} number(s) "
                                   "for it")


def map_state(state: dict[str, Any], path: Path,
              build_generator: GeneratorBuilder) -> tuple[Layout, Generator]:
    """A utom generator (built by ``build_generator``) holding the weights of ``state``, a
    state dict of the authors' code."""
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                            for k, v in state.items()):
        raise InputError(path, f"not a {WHAT} (a mapping of names to tensors)")
    state = _strip_prefix(state)
    _check_storage(state, path)
    layout = detect(state, path)
    try:
        cfg = TrainConfig(**layout.settings())
    except ValidationError as err:
        where = ".".join(map(str, err.errors()[0]["loc"]))
        raise InputError(path, f"its layout ({layout.describe()}) is beyond utom's generators: "
                               f"{where}: {err.errors()[0]['msg']}") from None
    with torch.device("meta"):  # the layout's shapes, checked before any weight is allocated
        required, optional = _expected(layout, build_generator(
            cfg, layout.in_channels, layout.out_channels))
    _check(state, required, optional, layout, path)
    generator = build_generator(cfg, layout.in_channels, layout.out_channels)
    weights = {}
    for key, value in generator.state_dict().items():
        theirs = state.get(layout.to_theirs(key))
        weights[key] = torch.zeros_like(value) if theirs is None else theirs.float()
    generator.load_state_dict(weights)
    return layout, generator.eval()


def load_authors_generator(path: Path,
                           build_generator: GeneratorBuilder) -> tuple[Layout, Generator]:
    """Read ``path`` (weights only: nothing in it can run code) and map it into utom."""
    state = load_torch_file(path, WHAT)
    if not isinstance(state, dict):
        raise InputError(path, f"not a {WHAT} (it holds a {type(state).__name__})")
    return map_state(state, path, build_generator)
