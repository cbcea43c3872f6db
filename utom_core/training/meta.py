"""What a run fits once, before its first iteration: planes, normalisations, thresholds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.data.fitting import balanced, fit_domain, fitting_sample, range_note
from utom_core.data.images import DomainImages
from utom_core.errors import InputError, UtomError
from utom_core.task import Task

HEAD_BYTES = 2**20
"""How much of each input file its fingerprint hashes (headers and the first pixels)."""


cut_axes = Task.cut_axes
"""Planes each domain's volumes are cut into (``cut_axes(task)``)."""


def fit_run_meta(task: Task, cfg: TrainConfig, images_a: DomainImages,
                 images_b: DomainImages, processes: int = 1) -> trained.RunMeta:
    """Normalisations and thresholds of both domains, fitted once on each domain's fixed
    fitting sample (``fitting_sample``: the same for every budget and seed); ρ's decay length
    counts the images all ``processes`` of a torchrun job see."""
    where_a, where_b = _where("A", images_a), _where("B", images_b)
    samples_a = fitting_sample(images_a, cfg.sample_pixels, where_a)
    samples_b = fitting_sample(images_b, cfg.sample_pixels, where_b)
    both = balanced(samples_a, samples_b) if cfg.shared_range else None
    fit_a = fit_domain(samples_a, task.domain_a, cfg.threshold_a, cfg.threshold_method,
                       where_a, both)
    fit_b = fit_domain(samples_b, task.domain_b, cfg.threshold_b, cfg.threshold_method,
                       where_b, both)
    return trained.RunMeta(
        task=task.name, domain_a=task.domain_a, domain_b=task.domain_b, slicing=task.slicing,
        normalisation_a=fit_a.normalisation, normalisation_b=fit_b.normalisation,
        threshold_a=fit_a.threshold, threshold_b=fit_b.threshold,
        content_fraction_a=fit_a.fraction, content_fraction_b=fit_b.fraction,
        threshold_source_a=fit_a.origin(), threshold_source_b=fit_b.origin(),
        range_note=range_note(samples_a, samples_b, task.domain_a, task.domain_b)
        if cfg.shared_range else "",
        **input_records(images_a, images_b),
        images_per_epoch=cfg.decay_length(processes),
    )


def _where(side: str, images: DomainImages) -> str:
    """``domain A (name: file, …)``: what a message about a whole domain refers to."""
    names = [src.path.name for src in images.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"domain {side} ({images.domain.name}: {shown})"


def fingerprint(path: Path) -> trained.InputFile:
    """``path`` made absolute, its size and a hash of its first MiB. A folder (an OME-Zarr
    store) is fingerprinted by its files' names and sizes and its metadata files' content."""
    path = Path(os.path.abspath(path))
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        size = 0
        for file in files:
            stat = file.stat()
            size += stat.st_size
            digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0".encode())
            if file.suffix == ".json" or file.name.startswith(".z"):
                digest.update(_head(file))
    else:
        size = path.stat().st_size
        digest.update(_head(path))
    return trained.InputFile(path=str(path), size=size, head_sha256=digest.hexdigest())


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def input_records(images_a: DomainImages, images_b: DomainImages) -> dict[str, list]:
    """RunMeta's ``inputs_a``/``inputs_b``: every file each domain reads, fingerprinted."""
    return {"inputs_a": [fingerprint(src.path) for src in images_a.sources],
            "inputs_b": [fingerprint(src.path) for src in images_b.sources]}


def recorded_inputs(records: list[trained.InputFile | str], option: str) -> list[Path]:
    """The files a resumed run trained on, refused when one is missing or has changed (the
    run would silently train on other images); ``option`` names how to give them anew."""
    again = f"give the images again with {option} to resume"
    if not records:
        raise UtomError(f"{option}: the run did not record its inputs; {again}")
    paths = []
    for record in records:
        if isinstance(record, str):  # an earlier utom: the path as given, no fingerprint
            if not Path(record).is_absolute():
                raise InputError(record, "recorded as a relative path by an earlier utom, "
                                         f"relative to a folder it did not record; {again}")
            paths.append(Path(record))
            continue
        path = Path(record.path)
        if not path.exists():
            raise InputError(path, f"missing: the run was trained on it; {again}")
        try:
            found = fingerprint(path)
        except OSError as err:
            raise InputError(path, f"cannot be read ({err.strerror or err})") from None
        if found != record:
            raise InputError(path, "changed since the run was trained on it (size or "
                                   f"content); restore it, or {again}")
        paths.append(path)
    return paths


def same_inputs(meta: trained.RunMeta, found: dict[str, list[trained.InputFile]]) -> None:
    """Refuse a resume that would train on other images than the run's: the files found
    (given again, wherever they now are, or at the recorded paths) must have the recorded
    sizes and contents, whatever their names (records of an earlier utom hold no fingerprint)."""
    for side, option in (("inputs_a", "--a"), ("inputs_b", "--b")):
        records = getattr(meta, side)
        if not records or any(isinstance(record, str) for record in records):
            continue
        wanted = sorted((record.size, record.head_sha256) for record in records)
        files = found[side]
        if len(files) != len(wanted):
            raise UtomError(f"{option}: gives {len(files)} image(s); the run trained on "
                            f"{len(wanted)}; give the run's own images to resume it")
        for file in files:
            if (file.size, file.head_sha256) not in wanted:
                raise InputError(file.path, f"not an image the run trained on ({option}: its "
                                            "size or content differs from every recorded one); "
                                            "give the run's own images to resume it")
