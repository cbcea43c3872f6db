"""The human side of a model package: its README (task, data, budget, validation, limits),
its name, description and tags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utom_core import __version__
from utom_core.domain import Domain, Normalisation
from utom_core.records import BestModel, RunRecord
from utom_core.run_folders import METRICS_FILE
from utom_core.trained import (
    BEST_MODEL_FILE,
    MODEL_FILE,
    InputFile,
    RunMeta,
    TrainedModel,
    gains_text,
)

PAPER = ("Li, X., Zhang, G., Qiao, H. et al. Unsupervised content-preserving transformation for "
         "optical microscopy. Light: Science & Applications 10, 60 (2021)")
PAPER_DOI = "10.1038/s41377-021-00484-y"
TASK_TAGS = {
    "stain-he": ["whole-slide-imaging", "tissue", "in-silico-labeling"],
    "denoise": ["fluorescence-light-microscopy", "denoising"],
    "isotropic": ["fluorescence-light-microscopy", "image-restoration"],
    "sr": ["super-resolution-microscopy", "image-restoration"],
    "label": ["transmission-light-microscopy", "in-silico-labeling"],
}
"""The zoo's tag categories (modality, content, task) of the built-in tasks."""


def _balance(gains: tuple[float, ...] | None) -> str:
    """The white balance the output scale holds, where the run fitted one."""
    if gains is None:
        return ""
    return (f" The range holds the run's white balance, {gains_text(gains)} per channel: the "
            "gains that give the background of its predictions the colour of the target "
            "images' glass.")


@dataclass(frozen=True)
class Card:
    """What the README and the rdf say about one exported generator."""

    predictor: TrainedModel
    meta: RunMeta
    state: dict[str, Any]
    direction: str
    weights: str
    """``ema`` or ``raw``: which weights were packaged."""
    run: Path
    halo: int
    min_size: int
    step: int
    views: int
    """Test-time views the package's model averages, as ``utom predict --views``."""
    axial: bool
    """The model predicts XZ/YZ planes: views that transpose are left out."""
    unused: frozenset[str] = frozenset()
    """Settings the run's method does not use (its cycle weight, its ρ₀): left unsaid."""

    @property
    def name(self) -> str:
        source, target = self.predictor.source.name, self.predictor.target.name
        text = f"utom {self.meta.task} {source} to {target}"
        return re.sub(r"[^A-Za-z0-9_+\- ()]", "", text)[:64].strip()

    @property
    def description(self) -> str:
        p = self.predictor
        return (f"Unpaired translation of {p.source.name} into {p.target.name} images (UTOM: "
                f"CycleGAN with a saliency constraint; utom task {self.meta.task}, "
                f"{self.direction}).")

    @property
    def tags(self) -> list[str]:
        generator = self.predictor.config.generator
        network = "resnet" if generator == "resnet" else "unet"
        return ["utom", "cyclegan", "unpaired", "image-to-image", "2d", "pytorch", network,
                self.meta.task, *TASK_TAGS.get(self.meta.task, [])]

    def readme(self) -> str:
        return "\n".join([
            f"# {self.name}", "", self.description, "",
            *self._task(), *self._training(), *self._validation(), *self._usage(),
            *self._limits(), "## Cite", "",
            f"- {PAPER}. doi:{PAPER_DOI}",
            f"- utom {__version__}, the implementation that trained (or imported) and packaged "
            "this model.", ""])

    def _task(self) -> list[str]:
        p, cfg = self.predictor, self.predictor.config
        return ["## Task", "",
                f"- From **{p.source.name}** ({_domain(p.source)}) to **{p.target.name}** "
                f"({_domain(p.target)}).",
                f"- Method `{cfg.method}`; generator `{cfg.generator}` (ngf {cfg.ngf}, "
                f"{_levels(cfg)}); {self.weights} weights.",
                f"- Content thresholds (raw units): source {p.source_threshold:g}, target "
                f"{p.target_threshold:g}.", ""]

    def _training(self) -> list[str]:
        imported = self.state.get("imported")
        lines = ["## Training data and budget", ""]
        if imported:
            return [*lines, f"- Trained with the authors' code and imported by `utom "
                            f"import-generator` from `{Path(imported['file']).name}` (sha256 "
                            f"{imported['sha256']}): {imported['layout']}. Their data and "
                            "budget were not recorded.", ""]
        cfg = self.predictor.config
        for side, inputs in (("A", self.meta.inputs_a), ("B", self.meta.inputs_b)):
            lines.append(f"- Domain {side}: {_files(inputs)}.")
        weights = [f"{symbol} {getattr(cfg, name):g}" for name, symbol in
                   (("lambda_cycle", "λ"), ("rho0", "ρ₀"), ("lambda_shift", "λ_shift"),
                    ("lambda_background", "λ_background"))
                   if name not in self.unused and (name != "lambda_background"
                                                   or cfg.lambda_background)]
        lines += [f"- {self.state.get('iteration', '?')} of {cfg.iterations} iterations, "
                  f"{cfg.tile} px tiles, batch {cfg.batch_size}, lr {cfg.lr:g}, seed "
                  f"{cfg.seed}" + "".join(f"; {weight}" for weight in weights) + ".", ""]
        return lines

    def _validation(self) -> list[str]:
        lines = ["## Validation", ""]
        metrics = self._metrics()
        if metrics:
            lines += ["Held-out test images of `utom run` (means over images):", "",
                      "| metric | value |", "| --- | --- |",
                      *(f"| {k} | {v:.4g} |" for k, v in metrics.items()), ""]
        else:
            lines += ["No held-out metrics were recorded with this run. Validate on images "
                      "with references of your own before quantitative use (`utom run` "
                      "reports content IoU/Dice, PSNR and SSIM where a task has references).",
                      ""]
        return lines

    def _metrics(self) -> dict[str, float]:
        """``utom run``'s test metrics, when RUN is the run inside its output folder (or one
        of its model files) and the model packaged is the one its tests were predicted with."""
        packaged = self.run / MODEL_FILE if self.run.is_dir() else self.run
        record = RunRecord.read(packaged.parent.parent / METRICS_FILE)
        if record is None or self.direction != "a2b":
            return {}
        used = BEST_MODEL_FILE if isinstance(record.predicted_with, BestModel) else MODEL_FILE
        return record.metrics if packaged.name == used else {}

    def _usage(self) -> list[str]:
        p = self.predictor
        return ["## Inputs, outputs and intensities", "",
                f"- Input `(batch, channel, y, x)`, {p.source.channels} channel(s) of raw "
                f"{p.source.dtype.value} intensities; height and width multiples of "
                f"{self.step}, at least {self.min_size}.",
                f"- Preprocessing: the run's fitted range {_range(p.source_norm)} mapped to "
                "[-1, 1] (`scale_linear`, then clipped), exactly as `utom predict` does.",
                f"- Output: {p.target.channels} channel(s) in the target's raw units "
                f"(`scale_linear` back from [-1, 1] to {_range(p.output_norm)}), float32; "
                f"`utom predict` rounds the same values to {p.target.dtype.value}."
                + _balance(p.output_gains),
                f"- Halo {self.halo} px: the generator's receptive radius; tiles must overlap "
                "by at least this much.", ""]

    def _limits(self) -> list[str]:
        lines = ["## Limits", "",
                 "- Instance normalisation uses the statistics of the whole input. `utom "
                 "predict` predicts planes up to 1 MP whole and freezes statistics sampled "
                 "over larger planes for all their tiles; a consumer that tiles this package "
                 "normalises each tile on its own and may show seams between tiles.",
                 "- Unpaired translation can invent or drop structure; the saliency constraint "
                 "keeps content where it is, not what it is. Outputs are not measurements.",
                 "- The fixed intensity range was fitted on the training images: other "
                 "microscopes, stains or exposures fall outside what the model has seen."]
        if "z" in self.predictor.source.axes:
            lines.append("- Volumes: this is the 2D plane generator; utom predicts volumes plane "
                         "by plane" + (" (XZ and YZ planes, averaged: use `utom predict` for "
                                       "the same result)" if self.meta.slicing.value != "xy"
                                       and self.direction == "a2b" else "") + ".")
        return [*lines, ""]


def _domain(domain: Domain) -> str:
    return (f"{domain.channels} channel(s), {domain.dtype.value}, {domain.background.value} "
            "background")


def _levels(cfg: Any) -> str:
    if cfg.generator == "resnet":
        return f"{cfg.n_blocks} residual blocks"
    return f"depth {cfg.unet_depth}"


def _range(norm: Normalisation) -> str:
    lows, highs = sorted(set(norm.low)), sorted(set(norm.high))
    if len(lows) == len(highs) == 1:
        return f"[{lows[0]:g}, {highs[0]:g}]"
    return "per channel [" + ", ".join(f"{lo:g}–{hi:g}" for lo, hi in
                                       zip(norm.low, norm.high, strict=True)) + "]"


def _files(inputs: list[InputFile | str]) -> str:
    if not inputs:
        return "not recorded"
    names = [Path(i.path if isinstance(i, InputFile) else i).name for i in inputs]
    shown = ", ".join(f"`{n}`" for n in names[:5])
    return f"{len(names)} file(s): {shown}" + (f" and {len(names) - 5} more" if len(names) > 5
                                               else "")
