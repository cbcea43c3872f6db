"""``utom export --bioimageio``: one generator as a BioImage Model Zoo package (format 0.5).

The package is described with ``bioimageio.spec``'s own models (so the spec library validates
what is built), zipped, and tested with ``bioimageio.core`` exactly as ``bioimageio test``
does — inference of both weight formats on the test tensor and on other sizes — before it is
moved into place: a package that fails is never written. Nothing in it points outside it, so
neither building nor testing it fetches anything.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from utom_core import __version__
from utom_core.domain import DTYPE_RANGE, Normalisation
from utom_core.errors import DiskError, UtomError, first_line
from utom_core.export import samples
from utom_core.export.bundle import MODEL_CLASS, constructor_kwargs, generator_source
from utom_core.export.card import PAPER, PAPER_DOI, Card
from utom_core.export.spec_versions import installed_clash
from utom_core.export.viewed import ViewAveraged
from utom_core.inference.views import DEFAULT_VIEWS
from utom_core.io import FormatTable
from utom_core.io.atomic import remove, temporary_sibling
from utom_core.io.replaceable import check_replaceable, commit_output
from utom_core.methods.base import Method
from utom_core.networks.base import GeneratorBuilder
from utom_core.task import Slicing
from utom_core.trained import Direction, TrainedModel, load_model, load_run

INSTALL = "pip install 'utom[bioimageio]'"
LICENSE = "BSD-3-Clause"
ARCHITECTURE_FILE = "utom_generator.py"
UNNAMED = "unnamed (set with utom export --author)"
"""The author of a package exported without ``--author``: no login name posing as a person."""


def _spec() -> Any:
    """bioimageio.spec's v0.5 model classes (an optional dependency), its logs silenced."""
    try:
        from bioimageio.spec.model import v0_5
        from loguru import logger
    except ImportError:
        raise UtomError(f"--bioimageio needs bioimageio.core: {INSTALL}") from None
    if (clash := installed_clash(INSTALL)) is not None:
        raise UtomError(f"--bioimageio: {clash}")
    logger.disable("bioimageio")  # its validation log is not utom's output
    return v0_5


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a bad output path before any work (the house rules of every output)."""
    if out.suffix.lower() != ".zip":
        raise UtomError(f"--bioimageio {out}: a model package is a .zip file")
    if out.is_dir():
        raise UtomError(f"--bioimageio {out}: is a folder; give a .zip file path")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise UtomError(f"{out} already exists (use --overwrite to replace it)")
    check_replaceable(out, "bioimageio")
    if not out.parent.is_dir():
        raise UtomError(f"--bioimageio {out}: folder {out.parent} does not exist")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scale(v: Any, gain: list[float], offset: list[float]) -> Any:
    """``scale_linear`` with one (gain, offset) or one per channel."""
    if len(set(gain)) == 1 and len(set(offset)) == 1:
        kwargs = v.ScaleLinearKwargs(gain=gain[0], offset=offset[0])
    else:
        kwargs = v.ScaleLinearAlongAxisKwargs(axis=v.AxisId("channel"), gain=gain,
                                              offset=offset)
    return v.ScaleLinearDescr(kwargs=kwargs)


def normalise(v: Any, norm: Normalisation) -> Any:
    """raw → [-1, 1]: 2 (x − low) / (high − low) − 1, the run's fitted map."""
    spans = [h - lo for lo, h in zip(norm.low, norm.high, strict=True)]
    return _scale(v, [2 / s for s in spans],
                  [-(h + lo) / s for lo, h, s in zip(norm.low, norm.high, spans, strict=True)])


def denormalise(v: Any, norm: Normalisation) -> Any:
    """[-1, 1] → raw: (y + 1) (high − low) / 2 + low."""
    return _scale(v, [(h - lo) / 2 for lo, h in zip(norm.low, norm.high, strict=True)],
                  [(h + lo) / 2 for lo, h in zip(norm.low, norm.high, strict=True)])


def _axes(v: Any, channels: int, card: Card, output: bool) -> list[Any]:
    """No halo on the output: the zoo pads an input by a declared halo, and the padding
    would enter the whole-image InstanceNorm statistics and shift every output pixel (by
    thousands of raw units on a smoke run); unpadded, the zoo predicts as ``utom predict``."""
    names = [f"c{i}" for i in range(channels)]
    if output:
        space = [v.SpaceOutputAxis(id=v.AxisId(a), size=v.SizeReference(
            tensor_id=v.TensorId("input"), axis_id=v.AxisId(a))) for a in "yx"]
    else:
        size = v.ParameterizedSize(min=card.min_size, step=card.step)
        space = [v.SpaceInputAxis(id=v.AxisId(a), size=size) for a in "yx"]
    return [v.BatchAxis(), v.ChannelAxis(channel_names=names), *space]


def _file(v: Any, path: Path) -> Any:
    return v.FileDescr(source=path, sha256=_sha256(path))


def _tensors(v: Any, p: TrainedModel, card: Card, work: Path) -> tuple[Any, Any]:
    dtype = p.source.dtype.value
    low, high = DTYPE_RANGE.get(p.source.dtype, (None, None))
    as_float = v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32"))
    inputs = v.InputTensorDescr(
        id=v.TensorId("input"), description=f"{p.source.name}, raw intensities",
        axes=_axes(v, p.source.channels, card, output=False),
        data=v.IntervalOrRatioDataDescr(type=dtype, range=(low, high)),
        test_tensor=_file(v, work / "test_input.npy"),
        sample_tensor=_file(v, work / "sample_input.tif"),
        preprocessing=[as_float, normalise(v, p.source_norm),
                       v.ClipDescr(kwargs=v.ClipKwargs(min=-1.0, max=1.0)), as_float])
    outputs = v.OutputTensorDescr(
        id=v.TensorId("output"), description=f"{p.target.name}, raw units (float)",
        axes=_axes(v, p.target.channels, card, output=True),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        test_tensor=_file(v, work / "test_output.npy"),
        sample_tensor=_file(v, work / "sample_output.tif"),
        postprocessing=[denormalise(v, p.output_norm), as_float])
    return inputs, outputs


def _weights(v: Any, card: Card, work: Path) -> Any:
    p = card.predictor
    version = v.Version(torch.__version__.split("+")[0])
    architecture = v.ArchitectureFromFileDescr(
        source=work / ARCHITECTURE_FILE, sha256=_sha256(work / ARCHITECTURE_FILE),
        callable=v.Identifier(MODEL_CLASS),
        kwargs=dict(views=card.views, axial=card.axial, **constructor_kwargs(p.generator)))
    return v.WeightsDescr(
        pytorch_state_dict=v.PytorchStateDictWeightsDescr(
            source=work / "weights.pt", sha256=_sha256(work / "weights.pt"),
            architecture=architecture, pytorch_version=version),
        torchscript=v.TorchscriptWeightsDescr(
            source=work / "weights_torchscript.pt",
            sha256=_sha256(work / "weights_torchscript.pt"), pytorch_version=version,
            parent="pytorch_state_dict"))


RANGE_TOLERANCE = 1e-5
"""Share of the output's raw range a reproduced value may be off by: float32 noise through
a deep network and a linear postprocessing, far under one grey level of a 16-bit image."""


def raw_tolerance(norm: Normalisation) -> float:
    """The absolute tolerance of the zoo's reproduction test: the default 1e-3, or
    ``RANGE_TOLERANCE`` of the output's range where that is coarser. Raw 16-bit outputs reach
    10⁴, where float32 resolves 1e-3 only, so a runtime's other summation order (another conv
    algorithm, another postprocessing formula) would count as a mismatch by the default."""
    span = float(np.max(np.subtract(norm.high, norm.low)))
    return max(1e-3, RANGE_TOLERANCE * span)


def describe(card: Card, work: Path, authors: list[str]) -> Any:
    """The package's ModelDescr over the files in ``work`` (validated by bioimageio.spec)."""
    v = _spec()
    p = card.predictor
    inputs, outputs = _tensors(v, p, card, work)
    return v.ModelDescr(
        name=card.name, description=card.description,
        authors=[v.Author(name=name) for name in authors],
        cite=[v.CiteEntry(text=PAPER, doi=v.Doi(PAPER_DOI)),
              v.CiteEntry(text=f"utom {__version__}: the UTOM implementation that packaged "
                               "this model (cite the paper above for the method)",
                          doi=v.Doi(PAPER_DOI))],
        license=v.LicenseId(LICENSE), documentation=_file(v, work / "README.md"),
        covers=[_file(v, work / "cover.png")], tags=card.tags, inputs=[inputs], outputs=[outputs],
        weights=_weights(v, card, work),
        config=v.Config(bioimageio=v.BioimageioConfig(reproducibility_tolerance=[
            v.ReproducibilityTolerance(absolute_tolerance=raw_tolerance(p.output_norm),
                                       mismatched_elements_per_million=0)]), utom=dict(
            version=__version__, task=card.meta.task, direction=card.direction,
            weights=card.weights, generator=p.config.generator, views=card.views,
            source_normalisation=p.source_norm.model_dump(mode="json"),
            target_normalisation=p.target_norm.model_dump(mode="json"),
            white_balance=None if p.output_gains is None else list(p.output_gains),
            thresholds=dict(source=p.source_threshold, target=p.target_threshold))))


def write_files(card: Card, work: Path, window: np.ndarray) -> None:
    """Every file the package holds, computed by utom (weights, tensors, docs, cover)."""
    p = card.predictor
    unit = samples.predict_unit(p, window, card.views)
    if not np.isfinite(unit).all():  # bioimageio.core's test would pass NaN for NaN
        raise UtomError(f"{card.run}: the {card.direction} generator gives NaN or infinite "
                        "values on the test input; its weights are broken")
    output = samples.raw_output(p, unit)[None]
    for name, data in (("test_input.npy", samples.npy_bytes(window[None])),
                       ("test_output.npy", samples.npy_bytes(output)),
                       ("sample_input.tif", samples.tiff_bytes(window[None])),
                       ("sample_output.tif", samples.tiff_bytes(output))):
        (work / name).write_bytes(data)  # bytes: a full disk is an OSError saying so
    samples.save_cover(work / "cover.png", p, window, unit)
    model = ViewAveraged(p.generator, card.views, card.axial)
    (work / "weights.pt").write_bytes(samples.torch_bytes(model.state_dict()))
    samples.save_torchscript(work / "weights_torchscript.pt", model, p, window)
    (work / ARCHITECTURE_FILE).write_text(generator_source(p.generator), encoding="utf-8")
    (work / "README.md").write_text(card.readme(), encoding="utf-8")


def test_package(package: Path) -> str | None:
    """bioimageio.core's test of the zipped package (as ``bioimageio test`` runs it): None if
    it passed, else the first failure in one line."""
    from bioimageio.core import test_model

    with warnings.catch_warnings():  # e.g. torch.jit.load's deprecation: the summary says
        warnings.simplefilter("ignore")  # all that matters
        summary = test_model(package)
    if summary.status == "passed":
        return None
    for detail in summary.details:
        if detail.status == "failed":
            error = detail.errors[0].msg if detail.errors else "failed"
            return f"{detail.name}: {first_line(Exception(error), 240)}"
    return f"status {summary.status}"


def make_card(run: Path, direction: Direction, weights: str,
              build_generator: GeneratorBuilder, views: int = DEFAULT_VIEWS,
              find_method: Callable[[str], Method] | None = None) -> Card:
    """The card of RUN's generator; ``find_method`` (the registry's) names the settings its
    method does not use, which the card leaves out."""
    cfg, meta, state = load_run(run)
    unused = find_method(cfg.method).unused_settings(cfg) if find_method else frozenset()
    predictor = load_model(run, direction, ema=weights == "ema", build_generator=build_generator)
    used = "ema" if weights == "ema" and cfg.ema_decay > 0 else "raw"  # as load_model
    generator = predictor.generator
    return Card(predictor=predictor, meta=meta, state=state, direction=direction, weights=used,
                run=Path(run), halo=samples.halo(generator),
                min_size=samples.min_side(generator), step=generator.size_multiple,
                views=views, axial=predictor.slicing is Slicing.xz_yz, unused=unused)


def export_bioimageio(run: Path, out: Path, direction: Direction = "a2b", weights: str = "ema",
                      overwrite: bool = False, sample: Path | None = None,
                      authors: list[str] | None = None, *,
                      build_generator: GeneratorBuilder,
                      formats: FormatTable | None = None, views: int = DEFAULT_VIEWS,
                      find_method: Callable[[str], Method] | None = None) -> Card:
    """Build, test and write the package of RUN's ``direction`` generator to ``out``
    (``formats`` reads ``sample``: None, io's built-ins; ``views``: the test-time views the
    package averages, ``utom predict``'s by default; ``find_method``: as ``make_card``)."""
    out = Path(out)
    check_out(out, overwrite)
    _spec()
    card = make_card(run, direction, weights, build_generator, views, find_method)
    meta, p = card.meta, card.predictor
    recorded = meta.inputs_a if direction == "a2b" else meta.inputs_b
    window = samples.test_window(sample, recorded, p, formats)
    work = temporary_sibling(out)
    try:
        work.mkdir()
        write_files(card, work, window)
        descr = describe(card, work, authors or [UNNAMED])
        from bioimageio.spec import save_bioimageio_package

        package = save_bioimageio_package(descr, output_path=work / "package.zip")
        failure = test_package(Path(package))
        if failure is not None:
            raise UtomError(f"{out}: the package failed bioimageio.core's test ({failure}); "
                            "nothing was written")
        commit_output(Path(package), out, overwrite, "bioimageio")
    except ValidationError as err:  # what bioimageio.spec refuses in the description
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UtomError(f"{out}: bioimageio.spec refuses the package description ({where}: "
                        f"{first['msg']}); nothing was written") from None
    except OSError as err:
        raise DiskError.refused(err, out, outcome="nothing was written") from None
    finally:
        remove(work)
    return card
