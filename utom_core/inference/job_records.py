"""What a cluster job (``utom_core.inference.dask``) was started for, so that ``--resume``
continues only its own work: the job's identity — the input, the generator's weights and
normalisations, direction and EMA, every tiling option and the output's shape — is recorded
in its store while it runs, and beside each output it finished (``.NAME.utom-job.json``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from utom_core.errors import UtomError
from utom_core.inference.blocks import ModelSpec
from utom_core.io.atomic import write_json
from utom_core.io.base import ImageInfo
from utom_core.trained import TrainedModel


def stamp(path: Path) -> dict[str, Any]:
    """A file by path, size and modification time (an input: hashing a whole slide costs
    minutes; its copy or rewrite changes these)."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def model_fingerprint(model: TrainedModel) -> str:
    """SHA-256 of the loaded generator's tensors and of the normalisations: a model rewritten
    in place (``cp`` over it, even keeping its size and time) is another model."""
    digest = hashlib.sha256(repr((model.source_norm, model.output_norm)).encode())
    for name, tensor in model.generator.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def job_identity(image: Path, info: ImageInfo, spec: ModelSpec, model: TrainedModel
                 ) -> dict[str, Any]:
    """Everything that determines the output's pixels, as JSON data."""
    return {"input": stamp(image), "model": model_fingerprint(model),
            "direction": spec.direction, "ema": spec.ema,
            "options": json.loads(json.dumps(asdict(spec.options))),
            "shape": list(info.shape), "dtype": info.dtype.name}


def record_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.utom-job.json")


def _output_stamp(output: Path) -> dict[str, Any]:
    return stamp(output / "zarr.json" if output.is_dir() else output)


def record_finished(output: Path, identity: dict[str, Any]) -> None:
    """Note beside a finished output which job wrote it (read by ``finished``)."""
    write_json(record_path(output), {"identity": identity, "output": _output_stamp(output)})


def finished(output: Path, identity: dict[str, Any]) -> bool:
    """With ``--resume``: whether ``output`` is there as this job finished it (skip it); False
    where there is none; an output that is not the job's own is refused in one line."""
    if not (output.exists() or output.is_symlink()):
        return False
    try:
        record = json.loads(record_path(output).read_text())
        own = record == {"identity": identity, "output": _output_stamp(output)}
    except (OSError, ValueError):
        own = False
    if not own:
        raise UtomError(f"{output}: is there but not as this job wrote it (another model, input "
                        "or options, changed since, or written without --scheduler): --resume "
                        "keeps only its own outputs; add --overwrite to replace it, or choose "
                        "another --out")
    return True
