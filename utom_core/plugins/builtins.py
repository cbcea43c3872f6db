"""utom's own extensions, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from utom_core.evaluation.colour import ColorFidelity
from utom_core.evaluation.lab import LabColour
from utom_core.evaluation.metrics import EVALUATORS
from utom_core.evaluation.resolution import Anisotropy, Resolution
from utom_core.hookspecs import hookimpl
from utom_core.io.formats import builtin_formats
from utom_core.methods import BUILTIN
from utom_core.networks import ResnetGenerator, UnetGenerator
from utom_core.networks.cyclegan_unet import CycleganUnetGenerator


def _resnet(in_channels: int, out_channels: int, cfg) -> ResnetGenerator:
    return ResnetGenerator(in_channels, out_channels, cfg.ngf, cfg.n_blocks, cfg.upsampling,
                           cfg.residual, cfg.norm_affine, cfg.anchor_sigma, cfg.lattice_notch)


def _unet(in_channels: int, out_channels: int, cfg) -> UnetGenerator:
    return UnetGenerator(in_channels, out_channels, cfg.ngf, cfg.unet_depth, cfg.upsampling,
                          cfg.residual, cfg.norm_affine, cfg.anchor_sigma, cfg.lattice_notch)


def _cyclegan_unet(in_channels: int, out_channels: int, cfg) -> CycleganUnetGenerator:
    return CycleganUnetGenerator(in_channels, out_channels, cfg.ngf, cfg.unet_depth,
                                 cfg.residual, cfg.norm_affine, cfg.anchor_sigma, cfg.lattice_notch)


@hookimpl
def register_generators(register):
    register("resnet", _resnet)
    register("unet", _unet)
    register("cyclegan-unet", _cyclegan_unet)


@hookimpl
def register_methods(register):
    for method in BUILTIN:
        register(method)


@hookimpl
def register_evaluators(register):
    for evaluator in (*EVALUATORS, ColorFidelity(), LabColour(), Resolution(), Anisotropy()):
        register(evaluator)


@hookimpl
def register_readers(register):
    for reader in builtin_formats().readers:
        register(reader)


@hookimpl
def register_writers(register):
    for writer in builtin_formats().writers:
        register(writer)
