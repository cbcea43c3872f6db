"""Training configuration: one pydantic model, saved with every run; unknown keys are errors.

What a user writes (config files, ``--set``) is validated strictly: a value must already have
the setting's type, so ``iterations = true`` or ``ngf = "16"`` is refused, not coerced. Saved
configs (config.json, checkpoints) are read back leniently: they were valid when written.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from utom_core.config_layers import merge_layers, moved_to_method_settings
from utom_core.errors import UtomError


class SaliencyVariant(StrEnum):
    """Whose threshold judges the generated image in L_sc.

    ``paper``: the target domain's, T_b(G(a)) as in the paper's equation (default).
    ``authors-code``: the source domain's, T_a(G(a)), as the authors' released code does.
    """

    paper = "paper"
    authors_code = "authors-code"


class Budget(StrEnum):
    """Presets of network size, tile size and iterations."""

    smoke = "smoke"
    quick = "quick"
    bench = "bench"
    demo = "demo"
    full = "full"


ThresholdSetting = float | Literal["auto", "task"]
Beta = Annotated[float, Field(ge=0, lt=1)]


class TrainConfig(BaseModel):
    """Every setting of a training run (the run directory stores it as config.json)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    method: str = Field("utom", min_length=1)
    """Registered training method (``utom methods``): utom, cyclegan, cyclegan-identity, cut,
    fastcut, utom-cut, a plugin's; supervised is ``utom run``'s ceiling on aligned pairs."""
    method_settings: dict[str, Any] = {}
    """The method's own settings, validated by its ``settings_model`` where the method is
    chosen (``[method_settings]`` in a config file, ``--set method_settings.KEY=VALUE``; e.g.
    the contrastive methods' ``lambda_nce``, ``nce_patches``, ``nce_temperature``); a run
    records them all, defaults included."""
    generator: str = "resnet"
    """Registered generator architecture (built in: resnet, unet, cyclegan-unet: the U-Net
    layout of the authors' code, ``unet_depth`` 7 or 8 for their unet_128 or unet_256)."""
    ngf: int = Field(64, ge=1, le=512)
    """Generator width (filters of the first layer)."""
    n_blocks: int = Field(9, ge=0, le=32)
    """Residual blocks of the ResNet generator (paper: 9)."""
    unet_depth: int = Field(4, ge=1, le=8)
    """Stride-2 levels of the U-Net generator."""
    upsampling: Literal["transpose", "resize", "smooth"] = "smooth"
    """smooth (default): blurred bilinear resize-then-conv, no 2- or 4-px grid on tissue;
    resize: nearest-neighbour; transpose: the paper's (docs/training.md)."""
    lattice_notch: float = Field(0.0, ge=0, le=32)
    """σ in pixels of the notch that takes the 4-px lattice of the two finest stride-2 levels
    (the 2- and 4-px periods) out of the generators' output; 0: off. With it, the sharper
    ``transpose`` upsampling prints no grid (stain-he's setting, 6; docs/training.md)."""
    residual: bool = False
    """Generators learn a correction to their input (identity at start; equal channels only)."""
    anchor_sigma: float = Field(0.0, ge=0, le=64)
    """σ in pixels of the input's low frequencies the generators keep (output + lowpass(input −
    output); 0: off; equal channels only): a restoration may then change only the detail finer
    than σ, never dim or drop content at coarser scales. For same-unit tasks whose degradation
    keeps the coarse image (noise, blur); σ several times the blur's."""
    norm_affine: bool = False
    """Generator norm layers learn a per-channel scale and shift (the authors' batch norm as their
    test script applies it, one image at a time; set by ``utom import-generator``)."""
    shared_range: bool = False
    """Fit one intensity range, and estimate one threshold, on both domains together (equal
    channels only): for domains in the same units whose training sets differ in brightness
    (restoration tasks). Thresholds given as numbers stay per domain."""
    ndf: int = Field(64, ge=1, le=512)
    """Discriminator width."""
    d_layers: int = Field(3, ge=1, le=6)
    """PatchGAN layers (3: 70x70 patches)."""
    tile: int = Field(256, ge=16, le=4096)
    """Training tile size in pixels (square)."""
    batch_size: int = Field(1, ge=1, le=1024)
    """Tiles per domain per iteration."""
    iterations: int = Field(20000, ge=1, le=10_000_000)
    """Total iterations of the run (a resumed run trains up to this count)."""
    minutes: float | None = Field(None, gt=0, le=10_000_000)
    """Training time to fill (--minutes): a trial times the step and plans ``iterations``."""
    lr: float = Field(2e-4, gt=0, le=1)
    """Adam learning rate."""
    betas: tuple[Beta, Beta] = (0.5, 0.999)
    """Adam betas."""
    lr_decay_start: float = Field(0.5, ge=0, le=1)
    """Fraction of iterations after which the learning rate decays linearly to zero."""
    lambda_cycle: float = Field(10.0, ge=0)
    """Weight λ of the cycle loss (and of the saliency term through λρ)."""
    lambda_identity: float = Field(0.5, ge=0)
    """Identity loss weight relative to λ, where the identity term is on."""
    lambda_shift: float = Field(10.0, ge=0)
    """Weight of |G(a shifted by 1–3 px) − G(a) shifted|₁, what a grid costs G (0: off)."""
    lambda_background: float = Field(0.0, ge=0)
    """Weight of |G(a) − B's background colour|₁ where a is background, and of F's (0: off)."""
    white_balance: bool = True
    """Every saved model carries one gain per channel that gives its outputs the target images'
    background colour, where that background is bright (bright-field; docs/training.md)."""
    identity: bool = False
    """UTOM only: the identity term |F(a) − a| + |G(b) − b| (equal channels only) keeps levels
    where the input already looks like the target (off for cyclegan, on for -identity)."""
    rho0: float = Field(5.0, ge=0)
    """Initial saliency weight ρ₀ (λρ₀ = 50 in the authors' code)."""
    images_per_epoch: int | None = Field(None, ge=1)
    """Decay length of ρ = ρ₀ exp(-images_seen / images_per_epoch); None: rho_decay_fraction."""
    rho_decay_fraction: float = Field(0.25, gt=0, le=100)
    """images_per_epoch as a fraction of the images the whole run sees, when not given."""
    saliency_variant: SaliencyVariant = SaliencyVariant.paper
    """Which domain's threshold judges generated images (paper: the target's)."""
    threshold_a: ThresholdSetting = "task"
    """Domain A threshold in raw units, "auto" (estimated) or "task" (the task's default)."""
    threshold_b: ThresholdSetting = "task"
    """Domain B threshold in raw units, "auto" or "task"."""
    threshold_method: Literal["otsu", "midpoint", "triangle"] = "midpoint"
    """Estimator for "auto" thresholds: Otsu, the paper's background/foreground midpoint, or
    the triangle method for sparse content (tried by itself where the others mark under 1%
    or over 99% of pixels as content)."""
    pool_size: int = Field(50, ge=0, le=10000)
    """Image pool of generated images shown to the discriminators."""
    ema_decay: float = Field(0.999, ge=0, lt=1)
    """Exponential moving average of generator weights (0 disables; EMA used for prediction)."""
    augment: bool = True
    """Random flips and 90° rotations of training tiles."""
    min_content: float = Field(0.05, ge=0, le=1)
    """A sampled tile should hold at least this fraction of content pixels (retried a few times)."""
    sample_pixels: int = Field(1_000_000, ge=1000, le=100_000_000)
    """Pixels per domain of the fixed sample the percentile range and threshold are fitted on
    (a lattice over every plane; all pixels of smaller images), whatever the budget: with the
    default, `utom threshold` fits the same threshold on the same images."""
    checkpoint_every: int = Field(500, ge=1)
    """Iterations between checkpoints (one is also written at the end and on Ctrl-C)."""
    log_every: int = Field(10, ge=1)
    """Iterations between loss-log flushes (per-iteration rows; one device sync per flush)."""
    preview_every: int = Field(500, ge=1)
    """Iterations between preview PNGs."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; auto picks CUDA when present (under torchrun: each rank its own GPU)."""
    amp: bool = True
    """bf16 autocast where the device computes it natively (CUDA, AVX512-BF16, AMX; else off)."""
    num_workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"
    """Tile-reading worker processes per domain; auto: a few on CUDA, 0 (in-process) on a CPU.
    The tiles are the same for any count (docs/training.md)."""
    compile: bool = False
    """torch.compile the networks' training step (minutes of compiling first)."""
    channels_last: bool = False
    """Run the training step's networks in channels_last memory format."""
    val_every: int = Field(500, ge=1)
    """Iterations between validations (with ``utom train --val``, or ``utom run``'s tests)."""
    val_metric: Literal["auto", "psnr", "ssim", "content_iou", "content_kept", "resolution",
                        "anisotropy", "target_colour"] = "auto"
    """Validation score that picks the best model; auto: psnr where every image has a reference,
    else content_iou; content_kept/resolution/anisotropy/target_colour: the latest/finest/most
    isotropic/closest-coloured model that keeps the content (training/model_choice.py)."""
    run_checkpoint: Literal["last", "best"] = "last"
    """The model ``utom run`` predicts its tests with: the last, or the best validated one,
    never picked by the tests' references (which would flatter its scores): GAN restorations
    drift from a good early model, and the input's content kept tells when."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seed of every random choice: a run is bit-for-bit repeatable on CPU."""

    @classmethod
    def saved(cls, settings: dict[str, Any]) -> TrainConfig:
        """A config a run saved (config.json, checkpoints, metrics.json), by any utom: read
        leniently, as it was valid when written, with settings under their old names moved
        (a before-validator would not do: it makes strict JSON validation refuse arrays)."""
        return cls.model_validate(moved_to_method_settings(settings))

    def decay_length(self, processes: int = 1) -> int:
        """images_per_epoch of the ρ schedule, explicit or derived from the planned run: the
        images all ``processes`` of a distributed run see together."""
        if self.images_per_epoch is not None:
            return self.images_per_epoch
        seen = self.iterations * self.batch_size * processes
        return max(1, round(self.rho_decay_fraction * seen))


BUDGETS: dict[Budget, dict[str, Any]] = {
    Budget.smoke: dict(
        ngf=8, n_blocks=2, ndf=8, tile=32, iterations=6, checkpoint_every=3, log_every=2,
        preview_every=3, pool_size=4, val_every=3,
    ),
    Budget.quick: dict(  # the demo's networks and tiles, 40% of its iterations (docs/training.md)
        ngf=24, n_blocks=6, ndf=32, tile=96, iterations=600, checkpoint_every=300,
        preview_every=300, val_every=100,
    ),
    Budget.bench: dict(  # every task x method x 3 seeds in about an hour on 2 CPU cores
        ngf=24, n_blocks=6, ndf=32, tile=64, iterations=500, checkpoint_every=250,
        preview_every=250, val_every=100,
    ),
    Budget.demo: dict(
        ngf=24, n_blocks=6, ndf=32, tile=96, iterations=1500, checkpoint_every=500,
        preview_every=500, val_every=150,
    ),
    Budget.full: dict(ngf=64, n_blocks=9, ndf=64, tile=256, iterations=40000),
}


BUDGET_NOTES: dict[Budget, str] = {
    Budget.smoke: "seconds; checks the installation, the output is noise",
    Budget.quick: "about 2 min for `utom run stain-he` on an idle 2-core CPU with bf16; a "
                  "recognisable result",
    Budget.bench: "about 1.5 min a run on one core; what `utom bench` compares",
    Budget.demo: "4-20 min on an idle 2-core CPU, by its speed (a run prints its own "
                 "estimate); the documented demo results (stain-he: content IoU 0.70, no grid)",
    Budget.full: "the paper's networks and 40 000 iterations; hours, for a GPU",
}
"""Each budget's expected time and quality (``--help`` and the docs)."""


RESUME_SETTINGS = frozenset({"iterations", "checkpoint_every", "log_every", "preview_every",
                             "val_every", "num_workers", "compile", "channels_last",
                             "white_balance"})
"""Settings a resumed run may change: when it ends, how often it writes or validates, how its
steps run, whether its model files carry a white balance; never what it learns (networks,
data, objective, optimiser, seed)."""


def describe_validation_error(err: ValidationError, source: str, within: str = "") -> str:
    """One line naming the offending key (in section ``within``) and the problem."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in (within, *first["loc"]) if p != "") or "config"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {where}: {first['msg']}{more}"


def _as_json(settings: dict[Any, Any], source: str) -> str:
    """The settings as the JSON document strict validation reads (TOML dates, say, are not
    setting values)."""
    for key, value in settings.items():
        if not isinstance(key, str):
            raise UtomError(f"{source}: {key!r}: setting names are strings")
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            raise UtomError(f"{source}: {key}: a {type(value).__name__} is not a setting "
                            "value") from None
    return json.dumps(settings)


def build_config(*layers: dict[str, Any], source: str = "config") -> TrainConfig:
    """Merge setting layers (later wins) and validate them strictly into a TrainConfig, as
    JSON: choices are given as their strings, pairs as arrays, and integers serve where
    floats are expected; nothing else is converted."""
    merged: dict[Any, Any] = {}
    for layer in layers:
        merged = merge_layers(merged, moved_to_method_settings(layer))
    try:
        return TrainConfig.model_validate_json(_as_json(merged, source), strict=True)
    except ValidationError as err:
        raise UtomError(describe_validation_error(err, source)) from None
