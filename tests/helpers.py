"""Test data helpers shared by several test modules."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch

from utom_core import hookspecs
from utom_core.commands.common import resumed_config
from utom_core.config import TrainConfig
from utom_core.domain import Domain, Normalisation
from utom_core.inference import TileOptions, output_info, predict_image
from utom_core.inference.tiling import Stitcher, TileGrid, pad_to
from utom_core.io.base import ImageInfo
from utom_core.networks import Generator
from utom_core.plugins import Resolved, get_registry
from utom_core.records import RunRecord
from utom_core.task import Slicing, Task
from utom_core.training.train import train as train_run
from utom_core.training.trainer import TrainResult

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "plugins" / "utom-example-task"
SHARED_DATA = REPO.parent / "shared" / "data"


def blobs(rng, size: int = 96, count: int = 12) -> np.ndarray:
    """Random Gaussian blobs in [0, ~1] on a zero background: simple fluorescence-like content."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for y, x in rng.uniform(0, size, (count, 2)):
        image += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 30)
    return image.clip(0, 1)


class Identity(Generator):
    """Returns its input: tiled prediction must then reproduce the image exactly."""

    def __init__(self, channels: int, multiple: int = 4) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        self._multiple = multiple

    @property
    def receptive_radius(self) -> int:
        return 0

    @property
    def size_multiple(self) -> int:
        return self._multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Memory:
    """An in-memory ImageSource and ImageSink that records every region read and written."""

    def __init__(self, data: np.ndarray) -> None:
        self.path, self.data = Path("memory.tif"), data
        self.info = ImageInfo(data.shape, data.dtype)
        self.log: list[tuple[str, tuple[slice, ...]]] = []

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        self.log.append(("read", region))
        return self.data[(slice(None), *region)].copy()

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        self.log.append(("write", region))
        self.data[(slice(None), *region)] = data

    def close(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def stitch_identity(image: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Cut ``image`` into the grid's tiles and stitch them back, row by row."""
    height, width = grid.padded_shape
    padded = pad_to(image, height, width)
    stitcher, out = Stitcher(grid, image.shape[0]), np.full(image.shape, np.nan, np.float32)
    for row in grid.rows:
        for i, col in enumerate(grid.cols):
            stitcher.add(i, padded[:, row.start:row.stop, col.start:col.stop])
        finished = stitcher.end_row()
        if finished is not None:
            rows, data = finished
            assert np.isnan(out[:, rows]).all(), "a row was released twice"
            out[:, rows] = data
    return out


def validate_ome_zarr(path: Path) -> list[np.ndarray]:
    """Check a store with the ecosystem's own libraries, not by hand: the OME-Zarr 0.5 pydantic
    models (``ome-zarr-models``) and ``ome-zarr-py``'s reader; returns every level as read by
    the latter."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.common.omero import Omero
    from ome_zarr_models.v05.image import Image

    group = zarr.open_group(str(path), mode="r")
    image = Image.from_zarr(group)
    (multiscale,) = image.ome_attributes.multiscales
    Omero.model_validate(group.attrs["ome"]["omero"])
    node = next(iter(Reader(parse_url(str(path)))()))
    levels = [np.asarray(level) for level in node.data]
    assert len(levels) == len(multiscale.datasets)
    return levels


# toy training runs shared by the training tests
TINY = dict(ngf=8, n_blocks=1, ndf=8, d_layers=2, tile=32, pool_size=4, sample_pixels=5000,
            log_every=3, preview_every=1000, checkpoint_every=1000)
DENOISE = Task(name="toy-denoise", summary="toy",
               domain_a=Domain(name="noisy", channels=1), domain_b=Domain(name="clean", channels=1))


def build_generator(cfg: TrainConfig, in_channels: int, out_channels: int) -> Generator:
    """The GeneratorBuilder the commands pass down: the registry's."""
    return get_registry().build_generator(cfg, in_channels, out_channels)


def resolved(task: Task, cfg: TrainConfig) -> Resolved:
    """Every name a run of ``task`` with ``cfg`` uses, resolved as the commands resolve it."""
    return get_registry().resolve(task, cfg)


def train(task: Task, cfg: TrainConfig, run_dir: Path, *paths, resume: bool = False,
          **options) -> TrainResult:
    """``training.train`` given what ``utom train`` resolves (on resume, the run's method)."""
    run = resolved(task, resumed_config(run_dir) if resume else cfg)
    return train_run(task, cfg, run_dir, *paths, method=run.method,
                     build_generator=run.build_generator, formats=run.formats, resume=resume,
                     **options)


def weights(run_dir):
    state = torch.load(run_dir / "model.pt", weights_only=True)
    return {k: v for k, v in {**state["g_ab"], **state["ema_ba"]}.items()}


def assert_same(w1, w2):
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.equal(w1[key], w2[key]), key


def predict_array(data: np.ndarray, generator: Generator, in_norm: Normalisation, out_norm=None,
             **options) -> np.ndarray:
    out_norm = out_norm or in_norm
    source = Memory(data)
    sink = Memory(np.zeros(output_info(source.info, generator.out_channels, out_norm.dtype.value
                                       ).shape, out_norm.dtype.value))
    slicing = options.pop("slicing", Slicing.xy)
    predict_image(source, generator, in_norm, out_norm, sink, TileOptions(**options), slicing)
    return sink.data


def whole_image(generator: Generator, unit: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return generator(torch.from_numpy(unit[None]))[0].numpy()


def hook_functions():
    return {name: fn for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and hasattr(fn, "utom_spec")}


def run_record(**changes) -> RunRecord:
    """A metrics.json record of a small ``utom run``, with ``changes``."""
    fields = dict(
        task="denoise", plugin="utom", method="utom", budget="demo", seed=0, iterations=39,
        wall_seconds=9.0, train_seconds=6.0, metrics={}, images=[], notes=["user data"],
        config=TrainConfig(), thresholds={"a": 1.0, "b": 2.0},
        content_fractions={"a": None, "b": None}, threshold_sources={"a": None, "b": None},
        predicted_with={"model": "last", "iteration": 39},
        versions={"utom": "0", "torch": "0", "numpy": "0", "python": "3"},
        machine={"platform": "test", "processor": "x86_64", "cpus": 2})
    return RunRecord.model_validate({**fields, **changes})
