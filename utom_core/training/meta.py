"""What a run fits once, before its first iteration: planes, normalisations, thresholds."""

from __future__ import annotations

import numpy as np

from utom_core import runs
from utom_core.config import TrainConfig
from utom_core.data.fitting import domain_samples, fit_domain
from utom_core.data.images import DomainImages
from utom_core.task import Slicing, Task


def cut_axes(task: Task) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Planes each domain's volumes are cut into: XZ/YZ for A in isotropic restoration."""
    if task.slicing is Slicing.xz_yz:
        return ("y", "x"), ("z",)
    return ("z",), ("z",)


def fit_run_meta(task: Task, cfg: TrainConfig, images_a: DomainImages,
                 images_b: DomainImages) -> runs.RunMeta:
    """Normalisations and thresholds of both domains, fitted once on sampled pixels."""
    fit_rng = np.random.default_rng([cfg.seed, 1])
    where_a, where_b = _where("A", images_a), _where("B", images_b)
    samples_a = domain_samples(images_a, fit_rng, cfg.sample_pixels, where_a)
    samples_b = domain_samples(images_b, fit_rng, cfg.sample_pixels, where_b)
    both = np.concatenate([samples_a, samples_b], axis=1) if cfg.shared_range else None
    norm_a, thr_a = fit_domain(samples_a, task.domain_a, cfg.threshold_a, cfg.threshold_method,
                               where_a, both)
    norm_b, thr_b = fit_domain(samples_b, task.domain_b, cfg.threshold_b, cfg.threshold_method,
                               where_b, both)
    return runs.RunMeta(
        task=task.name, domain_a=task.domain_a, domain_b=task.domain_b, slicing=task.slicing,
        normalisation_a=norm_a, normalisation_b=norm_b, threshold_a=thr_a, threshold_b=thr_b,
        inputs_a=[str(src.path) for src in images_a.sources],
        inputs_b=[str(src.path) for src in images_b.sources],
        images_per_epoch=cfg.decay_length(),
    )


def _where(side: str, images: DomainImages) -> str:
    """``domain A (name: file, …)``: what a message about a whole domain refers to."""
    names = [src.path.name for src in images.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"domain {side} ({images.domain.name}: {shown})"
