"""Network architectures: generators (registered by name) and the PatchGAN discriminator."""

from utom_core.networks.base import Generator, init_weights
from utom_core.networks.norm import InstanceNorm, frozen_norm_statistics
from utom_core.networks.patchgan import PatchGAN
from utom_core.networks.resnet import ResnetGenerator
from utom_core.networks.unet import UnetGenerator

__all__ = [
    "Generator",
    "InstanceNorm",
    "PatchGAN",
    "ResnetGenerator",
    "UnetGenerator",
    "frozen_norm_statistics",
    "init_weights",
]
