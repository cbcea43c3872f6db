"""The training loop: a registered method's networks and step, image pools, EMA, full-state resume.

No module-level state: everything a run needs lives on its ``Trainer``, so several runs, or the
ranks of a torchrun job (``training.distributed``), never share anything by accident.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.data.background import background_colours
from utom_core.data.images import DomainImages
from utom_core.data.pipeline import TileStreams, worker_count
from utom_core.data.sampling import TileSampler
from utom_core.device import autocast, resolve_device
from utom_core.errors import DiskError, UtomError
from utom_core.io import FormatTable
from utom_core.methods import Method, StepContext, TrainingMethod
from utom_core.methods.base import runnable_here
from utom_core.methods.losses import saliency_pair
from utom_core.methods.pool import ImagePool
from utom_core.networks.base import Generator, GeneratorBuilder
from utom_core.progress import LoopProgress
from utom_core.task import Task
from utom_core.training import distributed
from utom_core.training.ema import update_ema
from utom_core.training.execution import check_tile, step_input, step_networks
from utom_core.training.meta import cut_axes, fit_run_meta
from utom_core.training.preview_panels import save_training_previews
from utom_core.training.runlog import Row, append_rows, check_weights, log_due, summary
from utom_core.training.schedules import lr_factor, rho
from utom_core.training.signals import stop_on_signals
from utom_core.training.state import own_part, rank_state, restore_rank_state
from utom_core.training.validation import Validator, ValPair
from utom_core.training.white_balance import WhiteBalance

POOL_KEY = 3
"""Second word of the seed of the run's own generator (pools, patch positions; [seed, 1]:
fitting, [seed, 2, …]: tiles)."""
GENERATORS = ("g_ab", "g_ba")
"""Module names of the generators: what the model file holds and EMA follows."""


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    """Iterations completed (the checkpoint's counter)."""
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    """The last logged loss terms."""
    meta: trained.RunMeta | None = None
    """What the run fitted (thresholds, ranges)."""


class Trainer:
    """One training run in one run directory (under torchrun: this rank's part of it)."""

    def __init__(self, task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path],
                 b_paths: list[Path], *, method: Method, build_generator: GeneratorBuilder,
                 formats: FormatTable | None = None, meta: trained.RunMeta | None = None,
                 val: list[ValPair] | None = None) -> None:
        """``method`` (the one ``cfg.method`` names) and ``build_generator`` come resolved from
        the caller; ``formats``: the table the images are opened with (None: io's built-ins)."""
        self.task, self.run_dir = task, run_dir
        self.build_generator, self.formats = build_generator, formats
        self.ranks = distributed.ranks()
        self.device = distributed.rank_device(resolve_device(cfg.device))
        axes_a, axes_b = cut_axes(task)
        self.images_a = DomainImages(a_paths, task.domain_a, axes_a, formats)
        try:
            self.images_b = DomainImages(b_paths, task.domain_b, axes_b, formats)
            self._setup(task, cfg, method, meta, val or [])
        except BaseException:
            self.images_a.close()
            if hasattr(self, "images_b"):
                self.images_b.close()
            raise

    def _setup(self, task: Task, cfg: TrainConfig, method: Method,
               meta: trained.RunMeta | None, val: list[ValPair]) -> None:
        a_channels, b_channels = task.domain_a.channels, task.domain_b.channels
        if method.name != cfg.method:  # on resume: the run's saved settings name the method
            raise UtomError(f"the settings name method {cfg.method}, not {method.name}")
        if not isinstance(method, TrainingMethod):
            raise UtomError(f"method {method.name} trains on aligned pairs: use `utom run "
                            f"{task.name} --method {method.name}` (the bench's ceiling)")
        reason = method.not_applicable(cfg, (a_channels, b_channels))
        if reason is None and cfg.shared_range and a_channels != b_channels:
            reason = f"shared_range needs equal channel counts, not {a_channels} → {b_channels}"
        if reason:
            raise UtomError(f"method {method.name} on task {task.name}: {reason}")
        cfg = method.with_settings(cfg)  # the run records every one of its method's settings
        self.method = method
        fits = () if meta else (self.images_a, self.images_b)  # a resume keeps its tile
        if meta is None:  # fitted once, on rank 0, so that every rank uses the same
            meta = distributed.from_rank0(lambda: fit_run_meta(
                task, cfg, self.images_a, self.images_b, self.ranks.world))
        self.meta = meta
        self.cfg = cfg.model_copy(update={"images_per_epoch": meta.images_per_epoch})
        self.rng = np.random.default_rng([cfg.seed, POOL_KEY, self.ranks.rank])
        t_a = task.domain_a.saliency(meta.normalisation_a, meta.threshold_a)
        t_b = task.domain_b.saliency(meta.normalisation_b, meta.threshold_b)
        self.saliency = saliency_pair(t_a, t_b, cfg.saliency_variant)
        side_a, side_b = ((self.images_a, meta.normalisation_a, t_a),
                          (self.images_b, meta.normalisation_b, t_b))
        self.background = (background_colours(side_a, side_b, self.device)
                           if cfg.lambda_background else None)
        samplers = (TileSampler(*side_a, cfg.tile, cfg.min_content, cfg.augment),
                    TileSampler(*side_b, cfg.tile, cfg.min_content, cfg.augment))
        self.streams = TileStreams(samplers, cfg.batch_size, cfg.seed, self.ranks.rank,
                                   worker_count(cfg.num_workers, self.device), self.device)
        self._build_networks()
        check_tile(self.cfg, self.modules, a_channels, self.device, method, fits)
        self.nets = step_networks(self.modules, self.cfg, self.device)
        self.validator = Validator(task, meta, self.cfg, val, cut_axes(task)[0],
                                   self.g_ab.size_multiple, self.device,
                                   self.formats, self.images_b) if val else None
        self.balance = (WhiteBalance.of_run(side_a, side_b, self.validator, self.device)
                        if cfg.white_balance and self.ranks.main else None)  # rank 0 saves
        self.iteration, self.images_seen = 0, 0  # images of each domain, all ranks (ρ counts)
        self.lr_resumed: tuple[int, float] | None = None  # see lr_factor
        self.stop_signalled = False
        """Set by Ctrl-C or SIGTERM on this rank (signals.py)."""
        self.stop_requested = False
        """Every rank's agreement to stop after this iteration."""
        self.saved_at: int | None = None
        """Iteration of the last complete checkpoint on disk."""

    def _build_networks(self) -> None:
        cfg, a, b = self.cfg, self.task.domain_a.channels, self.task.domain_b.channels
        torch.manual_seed(cfg.seed)
        built = self.method.build(cfg, (a, b), lambda i, o: self.build_generator(cfg, i, o))
        self.modules = {name: net.to(self.device) for name, net in built.items()}
        self.emas: dict[str, Generator] = {
            f"ema_{name[2:]}": cast(Generator, copy.deepcopy(net).requires_grad_(False))
            for name, net in self.modules.items() if name in GENERATORS}
        """EMA copies of the generators (ema_ab, and ema_ba for two-sided methods)."""
        self.optimisers = self.method.optimisers(self.modules, cfg)
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)

    @property
    def g_ab(self) -> Generator:
        return cast(Generator, self.modules["g_ab"])  # built by the generator factory

    @property
    def ema_ab(self) -> Generator:
        return self.emas["ema_ab"]

    # -- state -------------------------------------------------------------------------
    def state_dict(self, ranks: list[dict[str, Any]] | None = None,
                   model: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full training state: ``model`` (made here if not given) and every rank's part."""
        state = dict(model or self.model_state())
        state.update({name: net.state_dict() for name, net in self.modules.items()
                      if name not in GENERATORS})
        state.update({name: opt.state_dict() for name, opt in self.optimisers.items()})
        state.update(ranks=ranks or [self.rank_state()], images_seen=self.images_seen,
                     lr_resumed=self.lr_resumed,
                     validation=self.validator.records() if self.validator else [])
        return state

    def rank_state(self) -> dict[str, Any]:
        return rank_state((self.pool_a, self.pool_b), self.rng, self.streams, self.device)

    def model_state(self) -> dict[str, Any]:
        """What prediction loads: the generators and their EMA copies (``runs``), finite."""
        generators = {**{name: cast(Generator, self.modules[name]) for name in GENERATORS
                         if name in self.modules}, **self.emas}
        check_weights(generators.values(), self.iteration)
        return dict(
            format=trained.MODEL_FORMAT,
            config=self.cfg.model_dump(mode="json"), meta=self.meta.model_dump(mode="json"),
            **{name: net.state_dict() for name, net in generators.items()},
            iteration=self.iteration,
            **(self.balance.state(generators, self.iteration) if self.balance else {}),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        parts: list[tuple[str, torch.nn.Module | torch.optim.Optimizer]] = [
            *self.modules.items(), *self.emas.items(), *self.optimisers.items()]
        for name, part in parts:
            part.load_state_dict(state[name])
        runnable_here(*self.optimisers.values())
        self.iteration, self.images_seen = int(state["iteration"]), int(state["images_seen"])
        restore_rank_state(own_part(state, self.ranks), (self.pool_a, self.pool_b), self.rng,
                           self.streams, self.device)
        resumed = state.get("lr_resumed")  # absent from checkpoints before it was kept
        self.lr_resumed = None if resumed is None else (int(resumed[0]), float(resumed[1]))
        self.saved_at = self.iteration
        if self.balance is not None:
            self.balance.forget()

    def save(self) -> None:
        """Checkpoint (full state, every rank's part gathered) and model file, each replaced
        atomically, by rank 0."""
        ranks = distributed.gather(self.rank_state())
        if ranks is not None:
            model = self.model_state()
            save_torch(self.state_dict(ranks, model), self.run_dir / trained.CHECKPOINT_FILE)
            save_torch(model, self.run_dir / trained.MODEL_FILE)
        self.saved_at = self.iteration

    # -- one iteration -----------------------------------------------------------------
    def step(self) -> torch.Tensor:
        """One update of every network by the method; returns its loss terms (no sync)."""
        cfg = self.cfg
        real_a, real_b = (step_input(batch, cfg) for batch in self.streams.next())
        lr = self.lr()
        for opt in self.optimisers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        ctx = StepContext(cfg, self.saliency, rho(self.images_seen, cfg.rho0,
                                                  self.meta.images_per_epoch),
                          self.rng, (self.pool_a, self.pool_b),
                          lambda: autocast(self.device, cfg.amp), self.g_ab.size_multiple,
                          self.background)
        terms = self.method.step(ctx, self.nets, self.optimisers, real_a, real_b)
        for name, ema in self.emas.items():
            update_ema(ema, self.modules["g_" + name[4:]], cfg.ema_decay, self.iteration)
        self.iteration += 1
        self.images_seen += cfg.batch_size * self.ranks.world
        self.last_batch = (real_a, real_b)
        return torch.stack([terms[name].detach().float() for name in self.method.loss_terms])

    def lr(self) -> float:
        """Learning rate of the next iteration."""
        return self.cfg.lr * lr_factor(self.iteration, self.cfg.iterations,
                                       self.cfg.lr_decay_start, self.lr_resumed)

    def _stop_agreed(self) -> bool:
        """Whether every rank stops now: one rank's signal stops them all at one iteration."""
        self.stop_requested = distributed.any_rank(self.stop_signalled)
        return self.stop_requested

    def _validate(self, done: int) -> None:
        """On rank 0 (the EMA weights are the same on every rank), when it is due."""
        if self.validator is not None and self.ranks.main and self.validator.due(done):
            self.validator.run(self.run_dir, done, self.ema_ab, self.model_state)

    # -- previews ----------------------------------------------------------------------
    def preview(self) -> None:
        if self.ranks.main:
            save_training_previews(self.run_dir / trained.TRAINING_PREVIEW_DIR, self.iteration,
                                   self.ema_ab, self.emas.get("ema_ba"), self.saliency,
                                   *self.last_batch)

    # -- the loop ----------------------------------------------------------------------
    def fit(self, stop_at: int | None = None, show_progress: bool = True) -> TrainResult:
        cfg = self.cfg
        end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
        rows: list[Row] = []
        losses: dict[str, float] = {}
        has_rho = "rho0" not in self.method.unused_settings(cfg)
        progress = LoopProgress("training", cfg.iterations, self.iteration, unit="iteration",
                                rate_unit="img/s", per_step=cfg.batch_size * self.ranks.world,
                                show=show_progress)
        try:
            with progress.shown(), stop_on_signals(self):
                while self.iteration < end and not self._stop_agreed():
                    rho_now = (rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)
                               if has_rho else None)
                    lr = self.lr()
                    terms = self.step()
                    rows.append((self.iteration, rho_now, lr, terms))
                    done = self.iteration
                    if log_due(done, end, cfg):
                        losses = append_rows(self.run_dir, rows, self.method.loss_terms)
                        rows.clear()
                        progress.update(done, note=summary(losses, rho_now))
                    else:
                        progress.update(done)
                    if done % cfg.preview_every == 0 or done == end:
                        self.preview()
                    self._validate(done)
                    if done % cfg.checkpoint_every == 0 or done == end:
                        self.save()
                if rows:
                    losses = append_rows(self.run_dir, rows, self.method.loss_terms)
                if self.stop_requested:
                    self.save()
        except OSError as err:  # disk full, read-only folder: the last checkpoint stays intact
            kept = (f"the checkpoint of iteration {self.saved_at} is intact (--resume)"
                    if self.saved_at is not None else "no checkpoint was written yet")
            raise DiskError.refused(err, err.filename or self.run_dir, outcome="training "
                                    f"stopped at iteration {self.iteration}; {kept}") from None
        finally:
            self.streams.close()
            self.images_a.close()
            self.images_b.close()
        return TrainResult(self.run_dir, self.iteration, self.stop_requested, losses, self.meta)
