"""``utom threshold``: estimate a domain's content threshold and show the mask it gives."""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from utom_core.commands.common import PATHS
from utom_core.console import stdout
from utom_core.data.fitting import check_threshold, content_fraction, estimate_threshold
from utom_core.data.images import DomainImages
from utom_core.domain import Polarity, fit_normalisation
from utom_core.errors import UtomError
from utom_core.evaluation.figures.panels import save_panel, to_display
from utom_core.plugins import get_registry

PREVIEW_MAX = 4096
"""Largest preview side in pixels; larger planes are shown downsampled."""


@click.command("threshold")
@click.argument("image", type=PATHS)
@click.option("--task", "task_name", required=True, help="Task whose domain the image belongs to.")
@click.option("--domain", type=click.Choice(["a", "b"]), default="a", show_default=True)
@click.option("--method", type=click.Choice(["midpoint", "otsu"]), default="midpoint",
              show_default=True, help="midpoint: the paper's background/foreground rule.")
@click.option("--value", type=float, default=None, help="Check this raw threshold instead.")
@click.option("--preview", type=PATHS, default=None, help="PNG of the content mask over the image.")
@click.option("--seed", type=int, default=0, show_default=True)
def threshold_command(image: Path, task_name: str, domain: str, method: str, value: float | None,
                      preview: Path | None, seed: int) -> None:
    """Estimate (or check) the content threshold of IMAGE in raw units."""
    task = get_registry().task(task_name)
    spec = task.domain_a if domain == "a" else task.domain_b
    if value is not None and not math.isfinite(value):
        raise UtomError(f"--value {value}: the threshold must be a finite number")
    images = DomainImages([image], spec)
    try:
        samples = images.sample_pixels(np.random.default_rng(seed), 1_000_000)
        if not np.isfinite(samples).all():
            raise UtomError(f"{image}: contains NaN or infinite values")
        try:  # the same check training makes: an image without contrast has no threshold
            fit_normalisation(samples, spec)
        except ValueError as err:
            raise UtomError(f"{image}: {err}") from None
        threshold = estimate_threshold(samples, method) if value is None else value
        fraction = content_fraction(samples, threshold, spec.background)
        source = "given" if value is not None else method
        stdout.print(f"{image}: threshold {threshold:.6g} ({source}, raw units) marks "
                     f"{fraction:.1%} of pixels as content ({spec.background.value} background)")
        if preview is not None:
            plane = images.planes[0]
            size = min(max(plane.shape), PREVIEW_MAX)
            raw = images.read(plane, 0, 0, size)[:, : plane.shape[0], : plane.shape[1]]
            save_panel(preview, [mask_overlay(raw, threshold, spec.background)])
            stdout.print(f"mask preview: {preview}")
        check_threshold(samples, threshold, spec, str(image))
    finally:
        images.close()


def mask_overlay(raw: np.ndarray, threshold: float, background: Polarity) -> np.ndarray:
    """The image (contrast-stretched) with its content pixels tinted magenta, as RGB uint8."""
    lo, hi = np.percentile(raw, [0.5, 99.8])
    unit = np.clip(2 * (raw.astype(np.float32) - lo) / max(hi - lo, 1e-6) - 1, -1, 1)
    rgb = to_display(unit).astype(np.float32)
    mean = raw.astype(np.float32).mean(axis=0)
    content = mean < threshold if background is Polarity.bright else mean > threshold
    magenta = np.array([255.0, 0.0, 255.0])
    rgb[content] = 0.6 * rgb[content] + 0.4 * magenta
    return np.rint(rgb).astype(np.uint8)
