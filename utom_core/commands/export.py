"""``utom export``: share a trained generator, as a BioImage Model Zoo package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from utom_core.commands.common import PATHS
from utom_core.console import console
from utom_core.inference.views import DEFAULT_VIEWS, VIEW_COUNTS

if TYPE_CHECKING:
    from utom_core.trained import Checkpoint, Direction


@click.command("export")
@click.argument("run", type=PATHS)
@click.option("--bioimageio", "package", required=True, type=PATHS,
              help="Model package to write (.zip, BioImage Model Zoo format 0.5).")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b",
              show_default=True, help="Generator to package: A→B or B→A.")
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True,
              help="The weights' moving average (what utom predict uses) or the last weights.")
@click.option("--sample", type=PATHS, default=None,
              help="Image whose centre becomes the test input and cover "
                   "[default: the run's first training image of the source domain].")
@click.option("--author", "authors", multiple=True,
              help="Author of the model (repeatable) [default: 'unnamed', which the zoo's "
                   "upload will not accept; no login name is taken for a person].")
@click.option("--views", type=click.Choice([str(n) for n in VIEW_COUNTS]),
              default=str(DEFAULT_VIEWS), show_default=True,
              help="Test-time flips/rotations the packaged model averages, as `utom predict "
                   "--views` (the default is its default).")
@click.option("--checkpoint", type=click.Choice(["run", "last", "best"]), default="run",
              show_default=True,
              help="Which of a run directory's models, as `utom predict --checkpoint` (run: "
                   "the one the run predicts with).")
@click.option("--overwrite", is_flag=True, help="Replace an existing package.")
def export_command(run: Path, package: Path, direction: Direction, weights: str,
                   sample: Path | None, authors: tuple[str, ...], views: str,
                   checkpoint: Checkpoint, overwrite: bool) -> None:
    """Package the generator of RUN (run directory or model file) for the BioImage Model Zoo;
    the package is tested with bioimageio.core first and written only if it passes."""
    from utom_core.export.bioimageio import export_bioimageio
    from utom_core.plugins import get_registry
    from utom_core.trained import chosen_model

    registry = get_registry()
    card = export_bioimageio(chosen_model(run, checkpoint), package, direction, weights,
                             overwrite, sample, list(authors),
                             build_generator=registry.build_generator,
                             formats=registry.formats, views=int(views),
                             find_method=registry.method)
    console.print(f"{package}: {card.name} ({direction}, {card.weights} weights); passed "
                  "bioimageio.core's test", markup=False, soft_wrap=True)
