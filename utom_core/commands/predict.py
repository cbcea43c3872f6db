"""``utom predict``: apply a trained generator to images of any size, streamed tile by tile."""

from __future__ import annotations

from pathlib import Path

import click

from utom_core.commands.common import PATHS
from utom_core.console import console
from utom_core.errors import UtomError
from utom_core.inference import Norm, TileOptions, predict_file
from utom_core.inference.files import FORMAT_SUFFIXES, output_name
from utom_core.inference.tiling import Stitch
from utom_core.io import is_image, list_images, writer_for
from utom_core.plugins import get_registry


def plan_outputs(inputs: list[Path], out: Path, fmt: str | None, overwrite: bool) -> list[Path]:
    """Output path of every input; refuses clobbering, reading and writing one path, bad formats.

    ``out`` is a file when it has an image suffix (one input only), else a folder.
    """
    if is_image(out):
        if len(inputs) > 1:
            raise UtomError(f"--out {out}: several inputs need a folder, not an image path")
        if fmt and not out.name.lower().endswith(FORMAT_SUFFIXES[fmt]) and not (
                fmt == "tiff" and out.name.lower().endswith(".tiff")):
            raise UtomError(f"--out {out} does not match --format {fmt}")
        outputs = [out]
    else:
        if out.suffix and not out.is_dir():  # "x.jpg" is a file name, not a folder
            writer_for(out)
        outputs = [out / output_name(p, fmt) for p in inputs]
    if len(set(outputs)) != len(outputs):
        raise UtomError(f"several inputs would be written to the same file in {out}: rename them")
    resolved = {p.resolve() for p in inputs}
    for path in outputs:
        writer_for(path)
        if path.resolve() in resolved:
            raise UtomError(f"{path}: output would overwrite its input; choose another --out")
        if path.exists() and not overwrite:
            raise UtomError(f"{path} already exists (use --overwrite to replace it)")
    return outputs


@click.command("predict")
@click.argument("model", type=PATHS)
@click.argument("inputs", nargs=-1, required=True, type=PATHS)
@click.option("--out", required=True, type=PATHS,
              help="Output image (one input) or folder (created if needed).")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="Generator to apply: A→B or B→A.")
@click.option("--tile", type=click.IntRange(min=8), default=512, show_default=True,
              help="Largest tile side in pixels (tiles shrink to fit the image).")
@click.option("--overlap", type=click.FloatRange(0.0, 0.9), default=0.25, show_default=True,
              help="Fraction of a tile shared with each neighbour.")
@click.option("--stitch", type=click.Choice([s.value for s in Stitch]), default="crop",
              show_default=True, help="crop: keep tile centres (paper); blend: feather overlaps.")
@click.option("--norm", type=click.Choice([n.value for n in Norm]), default="image",
              show_default=True,
              help="image: normalisation statistics of the whole image for every tile (no "
                   "seams); tile: each tile's own (paper).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Tiles per forward pass [default: 1 on CPU (measured fastest), 4 on CUDA].")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_SUFFIXES)), default=None,
              help="Output format in a folder [default: OME-Zarr above 16 MP, else TIFF].")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--raw-weights", is_flag=True, help="Use the last weights instead of their EMA.")
def predict_command(model: Path, inputs: tuple[Path, ...], out: Path, direction: str, tile: int,
                    overlap: float, stitch: str, norm: str, batch: int | None, fmt: str | None,
                    overwrite: bool, device: str, raw_weights: bool) -> None:
    """Predict every INPUT (image or folder) with the generator of MODEL (run dir or checkpoint)."""
    from utom_core.device import resolve_device
    from utom_core.runs import load_predictor

    get_registry()  # io then knows the formats that plugins register
    images = list_images(list(inputs))
    outputs = plan_outputs(images, out, fmt, overwrite)
    torch_device = resolve_device(device)
    predictor = load_predictor(model, direction, ema=not raw_weights, device=str(torch_device))
    batch = batch or (4 if torch_device.type == "cuda" else 1)
    options = TileOptions(tile=tile, overlap=overlap, stitch=Stitch(stitch), batch=batch,
                          norm=Norm(norm))
    folder = outputs[0].parent
    new_folders = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        for image, output in zip(images, outputs, strict=True):
            predict_file(image, output, predictor, options)
            console.print(f"{image} → {output}")
    except BaseException:
        for path in new_folders:  # a failed first prediction leaves no empty folders
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise
