"""The one prediction path: a trained model with one set of settings, applied to open images.

``utom predict`` (one process or the cluster's client), ``utom run``, the napari widget and
the Python API all predict through a ``Predictor``, so they check inputs the same way,
resolve ``--overlap auto`` the same way and write the same pixels. Each input is opened once
by the caller and handed in open: naming its output, checking it, measuring the overlap and
predicting it all read the same ``ImageSource``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from utom_core.data.images import check_planes
from utom_core.device import native_bf16
from utom_core.errors import UtomError
from utom_core.inference.fidelity import FidelityTerms, maps_made
from utom_core.inference.halo import PAPER_OVERLAP, auto_overlap
from utom_core.inference.planes import (
    Fidelity,
    Norm,
    PlanePredictor,
    Progress,
    TileOptions,
    check_channels,
)
from utom_core.inference.tiling import Stitch
from utom_core.inference.views import DEFAULT_VIEWS
from utom_core.inference.volumes import predict_checked
from utom_core.io import FormatTable, ImageInfo, ImageSink, ImageSource, open_image
from utom_core.task import Slicing
from utom_core.trained import TrainedModel


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How to predict: ``utom predict``'s options, with its defaults."""

    tile: int = 512
    """Largest tile side in pixels (tiles shrink to fit the image)."""
    overlap: float | None = None
    """Fraction of a tile shared with each neighbour; None: ``auto``, the smallest that keeps
    the generator's measured halo out of the output (``inference.halo``)."""
    stitch: Stitch = Stitch.crop
    norm: Norm = Norm.image
    batch: int | None = None
    """Tiles per forward pass; None: 1 on CPU (measured fastest), 4 on CUDA."""
    views: int = DEFAULT_VIEWS
    """Flips and rotations averaged (1, 2, 4, 8; XZ/YZ planes at most 4): ``inference.views``."""
    fidelity: bool = False
    """Write a fidelity map beside each prediction (``inference.fidelity``)."""
    amp: bool = False
    """bf16 autocast where the device computes bf16 natively (``device.native_bf16``); off by
    default, so a prediction equals the model package's and keeps 16-bit precision; its
    difference from fp32 is measured in docs/results/prediction.md."""


def output_info(info: ImageInfo, channels: int, dtype: np.dtype | str) -> ImageInfo:
    """The prediction's shape, pixel type and metadata: the input's (pixel size, the axes its
    planes stack), with the target channels."""
    return ImageInfo((channels, *info.shape[1:]), np.dtype(dtype), dict(info.pixel_size),
                     info.unit, info.stack)


class Predictor:
    """A trained model and one set of prediction settings; inputs come in as open sources."""

    def __init__(self, model: TrainedModel, options: PredictOptions | None = None, *,
                 formats: FormatTable | None = None, terms: Fidelity | None = None) -> None:
        """``terms``: the fidelity map's (default ``FidelityTerms.of(model)``; a benchmark
        scores single terms through it)."""
        self.model, self.formats = model, formats
        self.terms = terms if terms is not None else FidelityTerms.of(model)
        self.options = options = options or PredictOptions()
        parameter = next(model.generator.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        cuda = device.type == "cuda"
        self._tiles = TileOptions(tile=options.tile, stitch=options.stitch, norm=options.norm,
                                  batch=options.batch or (4 if cuda else 1),
                                  views=options.views, axial=model.slicing is Slicing.xz_yz,
                                  bf16=options.amp and native_bf16(device),
                                  overlap=PAPER_OVERLAP if options.overlap is None
                                  else options.overlap)
        self._overlap_known = options.overlap is not None
        self._checked: dict[int, ImageSource] = {}
        if options.fidelity and not maps_made(model.slicing):
            raise UtomError("--fidelity: not available for models of XZ/YZ planes (isotropic)")

    def open(self, path: Path) -> ImageSource:
        """``path`` opened lazily with this predictor's formats (the caller closes it)."""
        return open_image(path, formats=self.formats)

    def check(self, source: ImageSource) -> None:
        """InputError naming the file when it does not fit the generator: its channels, and
        for XZ/YZ planes a volume with a single z axis. Each source is checked once."""
        if id(source) in self._checked:
            return
        check_channels(source, self.model.generator)
        if self.model.slicing is Slicing.xz_yz and len(source.info.shape) == 4:
            check_planes(source, ("y", "x"), self.model.source.name)
        self._checked[id(source)] = source  # kept: an id is not reused while it lives here

    def output_info(self, source: ImageSource) -> ImageInfo:
        """What ``source``'s prediction will be (checked first)."""
        self.check(source)
        return output_info(source.info, self.model.generator.out_channels,
                           self.model.target_norm.dtype.value)

    def tile_options(self, sources: Iterable[ImageSource] = ()) -> TileOptions:
        """The tiling, its ``auto`` overlap measured once, on the first of ``sources`` whose
        planes are tiled (planes predicted whole need none: then the paper's 25 %)."""
        if not self._overlap_known:
            planes = PlanePredictor(self.model.generator, self.model.source_norm, self._tiles)
            tiled = next((s for s in sources if len(planes.grid(s.info.plane_shape)) > 1), None)
            if tiled is not None:
                overlap, _ = auto_overlap(self.model.generator, tiled, self.model.source_norm,
                                          self._tiles)
                self._tiles = dataclasses.replace(self._tiles, overlap=overlap)
                self._overlap_known = True
        return self._tiles

    def predict(self, source: ImageSource, create_sink: Callable[[ImageInfo], ImageSink],
                progress: Progress | None = None, replace: bool = False,
                create_fidelity: Callable[[ImageInfo], ImageSink] | None = None) -> None:
        """Check ``source``, create its output with ``create_sink(output info)``, predict it
        tile row by tile row and commit (replacing what is there by then only with
        ``replace``); on any failure the output is aborted, leaving nothing. With
        ``create_fidelity``, the fidelity map (float32, one channel) is written too and
        committed just after the prediction: a failure in between leaves the prediction
        without its map, never a map of a prediction that was not written."""
        info = self.output_info(source)
        del self._checked[id(source)]  # its last use: predicting it again checks it again
        options = self.tile_options([source])
        sinks = [create_sink(info)]
        try:
            if create_fidelity is not None:
                sinks.append(create_fidelity(output_info(source.info, 1, "float32")))
            model = self.model
            fidelity = (self.terms, sinks[1]) if len(sinks) > 1 else None
            predict_checked(source, model.generator, model.source_norm, model.output_norm,
                            sinks[0], options, model.slicing, progress, fidelity)
            for sink in sinks:
                sink.commit(replace=replace)
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
