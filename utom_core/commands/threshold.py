"""``utom threshold``: estimate a domain's content threshold and show the mask it gives."""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from utom_core.commands.common import PATHS, threshold_value
from utom_core.config import TrainConfig
from utom_core.console import stdout
from utom_core.data.fitting import balanced, check_fit, fit_domain, fitting_sample
from utom_core.data.images import DomainImages, Plane
from utom_core.domain import Domain, Normalisation, Polarity
from utom_core.errors import UtomError
from utom_core.evaluation.figures.panels import save_panel, to_display
from utom_core.io import FormatTable
from utom_core.plugins import get_registry
from utom_core.task import Task

PREVIEW_MAX = 4096
"""Largest preview side in pixels; larger planes are shown downsampled (block means)."""
READ_SIDE = 2048
"""Side of the windows a preview is read in: memory stays bounded for planes of any size."""


@click.command("threshold", short_help="The content threshold training would use for the given "
               "images (raw units), and its mask.")
@click.argument("image_paths", metavar="IMAGE...", nargs=-1, required=True, type=PATHS)
@click.option("--task", "task_name", required=True, help="Task whose domain the image belongs to.")
@click.option("--domain", type=click.Choice(["a", "b"]), default="a", show_default=True)
@click.option("--method", type=click.Choice(["midpoint", "otsu", "triangle"]),
              default="midpoint", show_default=True, help="Estimator (midpoint: the paper's "
              "background/foreground rule; triangle: sparse content, tried by itself where "
              "the other marks under 1% or over 99% as content), as training's "
              "threshold_method.")
@click.option("--value", metavar="RAW|auto", default=None,
              callback=lambda c, p, v: threshold_value(v),
              help="Check this raw threshold, or 'auto' to estimate one where the task sets one "
              "(as --threshold-a/-b in training). Default: what training uses.")
@click.option("--other", "others", type=PATHS, multiple=True, help="The other domain's "
              "training images (repeatable): a task with shared_range (sr, isotropic) "
              "estimates one threshold on both domains together, as training then does.")
@click.option("--sample-pixels", type=click.IntRange(min=1), default=TrainConfig().sample_pixels,
              show_default=True, help="Pixels the threshold is fitted on, as training's "
              "sample_pixels.")
@click.option("--preview", type=PATHS, default=None, help="PNG of the content mask over the image.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --preview file.")
def threshold_command(image_paths: tuple[Path, ...], task_name: str, domain: str, method: str,
                      value: float | str | None, others: tuple[Path, ...], sample_pixels: int,
                      preview: Path | None, overwrite: bool) -> None:
    """The content threshold training would use for IMAGE... (raw units), and its mask.

    Training fits on the same fixed sample of the same pixels with the same function, so
    the threshold and the content fraction printed here are those of a run on the same
    images (all of a domain's images or folders, as training is given them)."""
    registry = get_registry()
    task = registry.task(task_name)
    spec = task.domain_a if domain == "a" else task.domain_b
    axes = task.cut_axes()[0 if domain == "a" else 1]
    if isinstance(value, float) and not math.isfinite(value):
        raise UtomError(f"--value {value}: the threshold must be a finite number")
    images = DomainImages(list(image_paths), spec, axes, registry.formats)
    where = ", ".join(str(path) for path in image_paths)
    try:
        if preview is not None:
            check_preview(preview, [source.path for source in images.sources], overwrite)
        samples = fitting_sample(images, sample_pixels, where)
        shared = shared_sample(task, domain, samples, list(others), registry.formats,
                               sample_pixels)
        fit = fit_domain(samples, spec, "task" if value is None else value, method, where,
                         shared, check=False)
        stdout.print(f"{where}: {fit.describe()} ({spec.background.value} background)",
                     markup=False, soft_wrap=True)
        if shared is None and task.training.get("shared_range") and "estimate" in fit.source:
            stdout.print(f"note: task {task.name} estimates one threshold on both domains' "
                         "images together (shared_range): give the other domain's images with "
                         "--other for the value training will use", markup=False,
                         soft_wrap=True)
        check_fit(fit, where)  # refused: no preview either
        if preview is not None:
            first = images.planes[0]
            raw = downsampled_plane(images, first)
            save_panel(preview, [mask_overlay(raw, spec, fit.normalisation, fit.threshold)])
            shown = (f" (the first plane of {Path(images.sources[first.source].path).name}; "
                     f"{len(images.planes)} planes in all)" if len(images.planes) > 1 else "")
            stdout.print(f"mask preview: {preview}{shown}", markup=False, soft_wrap=True)
    finally:
        images.close()


def shared_sample(task: Task, domain: str, samples: np.ndarray, others: list[Path],
                  formats: FormatTable, sample_pixels: int) -> np.ndarray | None:
    """Both domains' fitting samples, balanced as training balances them, where the task
    shares one range and threshold between its domains and the other's images are given."""
    if not others:
        return None
    if not task.training.get("shared_range"):
        raise UtomError(f"--other: task {task.name} fits each domain on its own images "
                        "(no shared_range); leave --other out")
    other = "b" if domain == "a" else "a"
    spec = task.domain_b if other == "b" else task.domain_a
    images = DomainImages(others, spec, task.cut_axes()[0 if other == "a" else 1], formats)
    try:
        where = ", ".join(str(path) for path in others)
        other_samples = fitting_sample(images, sample_pixels, where)
    finally:
        images.close()
    return (balanced(samples, other_samples) if domain == "a"
            else balanced(other_samples, samples))  # training's order: the same sums


def check_preview(preview: Path, inputs: list[Path], overwrite: bool) -> None:
    """The rules of every output: never an input, never a folder, never an existing file
    without --overwrite."""
    if preview.resolve() in {path.resolve() for path in inputs}:
        raise UtomError(f"--preview {preview}: is the input image; choose another path")
    if preview.is_dir():
        raise UtomError(f"--preview {preview}: is a folder; give a PNG file path")
    if (preview.exists() or preview.is_symlink()) and not overwrite:
        raise UtomError(f"--preview {preview}: already exists (use --overwrite to replace it)")


def downsampled_plane(images: DomainImages, plane: Plane, limit: int = PREVIEW_MAX) -> np.ndarray:
    """The whole plane as (C, H / f, W / f) means of f × f blocks, f the smallest factor that
    fits ``limit``; read window by window (about READ_SIDE² pixels), never whole."""
    height, width = plane.shape
    factor = math.ceil(max(height, width) / limit)
    side = factor * min(max(1, READ_SIDE // factor), math.ceil(max(height, width) / factor))
    shown = np.empty((images.domain.channels, math.ceil(height / factor),
                      math.ceil(width / factor)), np.float32)
    for y in range(0, height, side):
        for x in range(0, width, side):
            window = images.read(plane, y, x, side).astype(np.float32)  # mirrored past edges
            blocks = window.reshape(window.shape[0], side // factor, factor, side // factor,
                                    factor).mean(axis=(2, 4))
            target = shown[:, y // factor:(y + side) // factor, x // factor:(x + side) // factor]
            target[:] = blocks[:, :target.shape[1], :target.shape[2]]
    return shown


TINTS = {Polarity.dark: (255.0, 0.0, 255.0), Polarity.bright: (0.0, 200.0, 0.0)}
"""Mask colour per background: magenta on dark fluorescence, green on pink-and-white H&E."""


def mask_overlay(raw: np.ndarray, domain: Domain, normalisation: Normalisation,
                 threshold: float) -> np.ndarray:
    """The image (contrast-stretched) with its content tinted and outlined, as RGB uint8.

    Content is where the training operator says so (``Domain.content_map`` > 0.5), not a
    second definition of it."""
    lo, hi = np.percentile(raw, [0.5, 99.8])
    unit = np.clip(2 * (raw.astype(np.float32) - lo) / max(hi - lo, 1e-6) - 1, -1, 1)
    rgb = to_display(unit).astype(np.float32)
    content = domain.content_map(raw, normalisation, threshold) > 0.5
    tint = np.array(TINTS[domain.background])
    rgb[content] = 0.6 * rgb[content] + 0.4 * tint
    rgb[outline(content)] = tint
    return np.rint(rgb).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's edge pixels: inside it, with a 4-neighbour outside."""
    padded = np.pad(mask, 1, mode="edge")
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner
