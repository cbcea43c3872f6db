"""utom: unpaired, content-preserving image transformation for optical microscopy.

From Python: ``utom_core.train``, ``utom_core.load_run`` and ``utom_core.predict``
(``utom_core.api``, docs/predict.md). They and the types they return are imported on first
use, so ``import utom_core`` stays cheap (no torch).
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("utom")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["PredictOptions", "Predictor", "TrainedModel", "__version__", "load_run", "predict",
           "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "load_run", "predict"):
        from utom_core import api

        return getattr(api, name)
    if name in ("Predictor", "PredictOptions"):
        from utom_core.inference import predictor

        return getattr(predictor, name)
    if name == "TrainedModel":
        from utom_core.trained import TrainedModel

        return TrainedModel
    raise AttributeError(f"module 'utom_core' has no attribute {name!r}")
