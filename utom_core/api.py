"""utom from Python: train a run, load it, predict images — what ``utom train`` and
``utom predict`` do, as three functions (re-exported by ``utom_core``, docs/predict.md).

Like the commands, these functions are a composition root: they build the plugin registry
(installed tasks, generators, methods, formats) and hand its objects down. Everything heavy
is imported when a function is called, so ``import utom_core`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from utom_core.inference.predictor import PredictOptions, Predictor
    from utom_core.trained import Checkpoint, Direction
    from utom_core.training.trainer import TrainResult

Paths = Sequence[str | PathLike[str]]


def train(task: str, a: Paths, b: Paths, out: str | PathLike[str], *, budget: str = "demo",
          settings: Mapping[str, Any] | None = None, overwrite: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Train ``task`` on unpaired images (files or folders) of domain A and domain B into the
    run directory ``out``: ``utom train TASK --a … --b … --out OUT --budget BUDGET`` with
    ``settings`` as its ``--set KEY=VALUE``s."""
    from utom_core.config import Budget, build_config
    from utom_core.plugins import get_registry
    from utom_core.training.train import train as train_run

    registry = get_registry()
    chosen = registry.task(task)
    cfg = build_config(*chosen.config_layers(Budget(budget)), dict(settings or {}),
                       source="settings")
    resolved = registry.resolve(chosen, cfg)
    return train_run(chosen, cfg, Path(out), [Path(p) for p in a], [Path(p) for p in b],
                     method=resolved.method, build_generator=resolved.build_generator,
                     formats=resolved.formats, overwrite=overwrite, show_progress=show_progress)


def load_run(run: str | PathLike[str], direction: Direction = "a2b", *,
             options: PredictOptions | None = None, device: str = "auto",
             weights: Literal["ema", "raw"] = "ema",
             checkpoint: Checkpoint = "run") -> Predictor:
    """The generator of a run directory (or model file) for ``direction``, ready to predict
    with ``options`` (None: ``utom predict``'s defaults); its ``.model`` is the loaded
    ``TrainedModel`` (domains, normalisations, thresholds). ``checkpoint``: as ``utom predict
    --checkpoint`` (default: the model the run predicts with)."""
    from utom_core.device import resolve_device
    from utom_core.inference.predictor import Predictor
    from utom_core.plugins import get_registry
    from utom_core.trained import chosen_model, load_model

    registry = get_registry()
    model = load_model(chosen_model(Path(run), checkpoint), direction, weights == "ema",
                       str(resolve_device(device, "device")),
                       build_generator=registry.build_generator,
                       reverse=options is not None and options.fidelity)
    return Predictor(model, options, formats=registry.formats)


def predict(model: Predictor | str | PathLike[str], image: str | PathLike[str],
            out: str | PathLike[str], *, fmt: str | None = None, overwrite: bool = False,
            show_progress: bool = False) -> Path:
    """Predict the file ``image`` with ``model`` (a ``load_run`` predictor, or a run) into
    ``out``: an image path, or a folder that receives it named as ``utom predict`` names it
    (``fmt``: tiff, zarr or ome-tiff; by default by size). Returns the output's path."""
    from utom_core.inference.files import predict_file
    from utom_core.inference.predictor import Predictor

    predictor = model if isinstance(model, Predictor) else load_run(model)
    return predict_file(predictor, Path(image), Path(out), fmt, overwrite, show_progress)
