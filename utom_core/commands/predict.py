"""``utom predict``: apply a trained generator to images of any size, streamed tile by tile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from utom_core.commands.common import PATHS, THREADS_OPTION, use_threads
from utom_core.console import console
from utom_core.errors import InputError, UtomError
from utom_core.inference import Norm, PredictOptions, Predictor, write_prediction
from utom_core.inference.fidelity import remove_stale_map
from utom_core.inference.files import (
    FORMAT_SUFFIXES,
    OpenImages,
    distinct_outputs,
    output_name,
)
from utom_core.inference.tiling import Stitch
from utom_core.inference.views import DEFAULT_VIEWS, VIEW_COUNTS
from utom_core.io import FormatTable, ImageSource, can_write, list_images, writer_for
from utom_core.io.replaceable import check_replaceable
from utom_core.plugins import get_registry
from utom_core.task import Slicing

if TYPE_CHECKING:
    from utom_core.inference.blocks import ModelSpec
    from utom_core.trained import Checkpoint, Direction, TrainedModel


def plan_outputs(inputs: list[Path], out: Path, fmt: str | None, overwrite: bool,
                 sources: OpenImages, formats: FormatTable | None = None,
                 fidelity: bool = False) -> list[Path]:
    """Output path of every input; refuses clobbering, reading and writing one path, bad formats
    (with ``fidelity``, for the fidelity maps beside them too).

    ``out`` is a file when it has an image suffix (one input only), else a folder.
    """
    if can_write(out, formats=formats):
        if len(inputs) > 1:
            raise UtomError(f"--out {out}: several inputs need a folder, not an image path")
        if fmt and not out.name.lower().endswith(FORMAT_SUFFIXES[fmt]) and not (
                fmt == "tiff" and out.name.lower().endswith(".tiff")):
            raise UtomError(f"--out {out} does not match --format {fmt}")
        outputs = [out]
    else:
        if out.suffix and not out.is_dir():  # "x.jpg" is a file name, not a folder
            writer_for(out, formats=formats)
        outputs = [out / output_name(sources[p], fmt, formats) for p in inputs]
    resolved = {p.resolve() for p in inputs}
    for path in distinct_outputs(list(zip(inputs, outputs, strict=True)), fidelity,
                                 formats):
        writer_for(path, formats=formats)
        if path.resolve() in resolved:
            raise UtomError(f"{path}: output would overwrite its input; choose another --out")
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise UtomError(f"{path} already exists (use --overwrite to replace it)")
        check_replaceable(path, writer_for(path, formats=formats).name)
    return outputs


class OverlapType(click.ParamType):
    """``auto`` (None) or a fraction in [0, 0.9]."""

    name = "auto|FRACTION"

    def convert(self, value, param, ctx) -> float | None:
        if value is None or value == "auto":
            return None
        return click.FloatRange(0.0, 0.9).convert(value, param, ctx)


OVERLAP = OverlapType()


def check_inputs(sources: list[ImageSource], predictor: Predictor, direction: Direction) -> None:
    """Check every input fits the generator before the first tile: a bad last file must not
    cost the minutes the first ones take, nor leave their outputs behind."""
    other = "b2a" if direction == "a2b" else "a2b"
    for source in sources:
        try:
            predictor.check(source)
        except InputError as err:
            found = source.info.channels
            model = predictor.model
            if found != model.generator.in_channels and found == model.target.channels:
                raise InputError(source.path, f"{err.problem}; {found} channel(s) fit the "
                                 f"{other} generator: use --direction {other}") from None
            raise


views_option = click.option(
    "--views", type=click.Choice([str(n) for n in VIEW_COUNTS]), default=str(DEFAULT_VIEWS),
    show_default=True, callback=lambda c, p, v: int(v),
    help="Predict under this many flips/rotations, undo them and average: less speckle, "
         "proportionally slower; XZ/YZ planes use at most 4 (docs/predict.md).")


@click.command("predict")
@click.argument("model", type=PATHS)
@click.argument("inputs", nargs=-1, required=True, type=PATHS)
@click.option("--out", required=True, type=PATHS,
              help="Output image (one input) or folder (created if needed).")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="Generator to apply: A→B or B→A.")
@click.option("--tile", type=click.IntRange(min=8), default=512, show_default=True,
              help="Largest tile side in pixels (tiles shrink to fit the image).")
@click.option("--overlap", type=OVERLAP, default="auto", show_default=True,
              help="Fraction of a tile shared with each neighbour; auto: the smallest that "
                   "keeps the generator's measured halo out of the output (docs/predict.md).")
@click.option("--stitch", type=click.Choice([s.value for s in Stitch]), default="crop",
              show_default=True, help="crop: keep tile centres (paper); blend: feather overlaps.")
@click.option("--norm", type=click.Choice([n.value for n in Norm]), default="image",
              show_default=True,
              help="image: normalisation statistics of the whole image for every tile (no "
                   "seams); tile: each tile's own (paper).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Tiles per forward pass [default: 1 on CPU (measured fastest), 4 on CUDA].")
@views_option
@click.option("--fidelity", is_flag=True,
              help="Also write a fidelity map beside each output (STEM.fidelity.tif / "
                   ".ome.zarr; float32, 0 trusted … 1 doubtful; docs/predict.md).")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_SUFFIXES)), default=None,
              help="Output format in a folder [default: OME-Zarr above 16 MP, else TIFF].")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--raw-weights", is_flag=True, help="Use the last weights instead of their EMA.")
@click.option("--checkpoint", type=click.Choice(["run", "last", "best"]), default="run",
              show_default=True,
              help="run: the model the run predicts with (utom run's: its task's pick, the "
                   "best validation's for stain-he, denoise, sr, isotropic where it "
                   "validated, else the last); last; best: its best validation score's (--val).")
@click.option("--scheduler", default=None, metavar="local[:N]|tcp://HOST:PORT",
              help="Predict on a Dask cluster: N local worker processes, or a running "
                   "scheduler (needs utom[distributed]; docs/predict.md).")
@click.option("--resume", is_flag=True,
              help="With --scheduler: continue an interrupted job, keeping what it wrote.")
@click.option("--amp/--no-amp", default=False, show_default=True,
              help="bf16 where the CPU/GPU computes it natively (AVX512-BF16, AMX, CUDA), else "
                   "fp32: 1.2-2x faster, outputs within 0.4 % of the fp32 ones for utom's "
                   "generators (docs/results/prediction.md).")
@click.option("--white-balance/--no-white-balance", default=True, show_default=True,
              help="Apply the gains per channel that bring the model's background to its "
                   "target images' glass, where the run fitted them (bright-field targets; "
                   "docs/training.md#white-balance).")
@THREADS_OPTION
def predict_command(model: Path, inputs: tuple[Path, ...], out: Path, direction: Direction,
                    tile: int, overlap: float | None, stitch: str, norm: str, batch: int | None,
                    views: int, fidelity: bool,
                    fmt: str | None, overwrite: bool, device: str, raw_weights: bool,
                    checkpoint: Checkpoint,
                    scheduler: str | None, resume: bool, amp: bool, white_balance: bool,
                    threads: int | None) -> None:
    """Predict every INPUT (image or folder) with the generator of MODEL (run dir or checkpoint)."""
    from utom_core.device import resolve_device
    from utom_core.trained import chosen_model, load_model

    use_threads(threads)

    if resume and not scheduler:
        raise UtomError("--resume: continues jobs of --scheduler only")
    if fidelity and scheduler:
        raise UtomError("--fidelity: maps are written in one process only; leave out "
                        "--scheduler")
    registry = get_registry()  # third-party formats and generators
    formats = registry.formats
    images = list_images(list(inputs), formats=formats)
    with OpenImages(formats) as sources:
        # with --resume, outputs the job finished are kept (the cluster job checks they are
        # its own, and says so)
        outputs = plan_outputs(images, out, fmt, overwrite or resume, sources, formats,
                               fidelity)
        torch_device = resolve_device(device, "--device")
        model_file = chosen_model(model, checkpoint)
        trained = balanced(load_model(model_file, direction, ema=not raw_weights,
                                      device=str(torch_device),
                                      build_generator=registry.build_generator,
                                      reverse=fidelity), white_balance)
        predictor = Predictor(trained, PredictOptions(tile, overlap, Stitch(stitch), Norm(norm),
                                                      batch, views, fidelity, amp),
                              formats=formats)
        check_inputs([sources[image] for image in images], predictor, direction)
        if (views > 4 and trained.slicing is Slicing.xz_yz and not scheduler  # it refuses
                and click.get_current_context().get_parameter_source("views")
                is not ParameterSource.DEFAULT):  # the default is "all the slicing allows"
            console.print("note: --views: XZ/YZ planes are predicted under 4 views (the flips; "
                          "a transpose would turn z sideways)")
        predictor.tile_options(sources[image] for image in images)
        folder = outputs[0].parent
        new_folders = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
        replaced = ({p for p in outputs if p.exists() or p.is_symlink()}
                    if overwrite and not fidelity else set())
        keep = {p.resolve() for p in (*images, *outputs)} if replaced else set()

        def landed(image: Path, output: Path) -> None:
            """Said as each output lands; a map it left stale goes (``remove_stale_map``)."""
            console.print(f"{image} → {output}", soft_wrap=True)
            if output in replaced:
                remove_stale_map(output, keep, formats)

        try:
            if scheduler:
                from utom_core.inference.blocks import ModelSpec
                from utom_core.inference.dask import predict_on_cluster

                spec = ModelSpec(str(Path(model_file).resolve()), direction, not raw_weights,
                                 str(torch_device), predictor.tile_options(), load_on_worker,
                                 white_balance)
                predict_on_cluster([sources[image] for image in images], outputs, predictor,
                                   spec, scheduler, landed, resume, overwrite)
                return
            for image, output in zip(images, outputs, strict=True):
                write_prediction(predictor, sources[image], output, overwrite=overwrite)
                sources.close(image)
                landed(image, output)
        except BaseException:
            for path in new_folders:  # a failed first prediction leaves no empty folders
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
            raise


def balanced(model: TrainedModel, white_balance: bool) -> TrainedModel:
    """``model`` as ``--white-balance`` asks: with its gains, or without them."""
    return model if white_balance else replace(model, output_gains=None)


def load_on_worker(spec: ModelSpec) -> tuple[TrainedModel, FormatTable]:
    """A Dask worker's model and formats: the worker builds its own registry (third-party
    generators and formats), as this command does."""
    from utom_core.trained import load_model

    registry = get_registry()
    model = load_model(Path(spec.path), spec.direction, spec.ema, spec.device,
                       build_generator=registry.build_generator)
    return balanced(model, spec.white_balance), registry.formats
