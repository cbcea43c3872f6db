"""The UTOM training loop: two generators, two PatchGANs, image pools, EMA, full-state resume.

No module-level state: everything a run needs lives on its ``Trainer``, so several runs, or the
ranks of a torchrun job (``training.distributed``), never share anything by accident.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utom_core import runs
from utom_core.checkpoints import save_torch
from utom_core.config import Method, TrainConfig
from utom_core.data.images import DomainImages
from utom_core.data.pipeline import TileStreams, worker_count
from utom_core.data.sampling import TileSampler
from utom_core.device import resolve_device
from utom_core.errors import DiskError, UtomError
from utom_core.networks import PatchGAN
from utom_core.plugins import get_registry
from utom_core.progress import LoopProgress
from utom_core.task import Task
from utom_core.training import distributed
from utom_core.training.ema import update_ema
from utom_core.training.execution import autocast, check_tile, step_input, step_networks
from utom_core.training.meta import cut_axes, fit_run_meta
from utom_core.training.objective import (
    LOSS_TERMS,
    discriminator_loss,
    generator_terms,
    lr_factor,
    rho,
    saliency_pair,
)
from utom_core.training.pool import ImagePool
from utom_core.training.previews import save_training_previews
from utom_core.training.runlog import Row, append_rows, summary
from utom_core.training.signals import stop_on_signals
from utom_core.training.state import own_part, rank_state, restore_rank_state
from utom_core.training.validation import Validator, ValPair

POOL_KEY = 3
"""Second word of the pools' seed ([seed, 1]: fitting, [seed, 2, …]: tiles)."""


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    """Iterations completed (the checkpoint's counter)."""
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    """The last logged loss terms."""
    meta: runs.RunMeta | None = None
    """What the run fitted (thresholds, ranges)."""


class Trainer:
    """One training run in one run directory (under torchrun: this rank's part of it)."""

    def __init__(self, task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path],
                 b_paths: list[Path], meta: runs.RunMeta | None = None,
                 val: list[ValPair] | None = None) -> None:
        self.task, self.run_dir = task, run_dir
        self.ranks = distributed.ranks()
        self.device = distributed.rank_device(resolve_device(cfg.device))
        axes_a, axes_b = cut_axes(task)
        self.images_a = DomainImages(a_paths, task.domain_a, axes_a)
        try:
            self.images_b = DomainImages(b_paths, task.domain_b, axes_b)
            self._setup(task, cfg, meta, val or [])
        except BaseException:
            self.images_a.close()
            if hasattr(self, "images_b"):
                self.images_b.close()
            raise

    def _setup(self, task: Task, cfg: TrainConfig, meta: runs.RunMeta | None,
               val: list[ValPair]) -> None:
        a_channels, b_channels = task.domain_a.channels, task.domain_b.channels
        if cfg.method is Method.supervised:
            raise UtomError("method supervised trains on aligned pairs: use `utom run "
                            f"{task.name} --method supervised` (the bench's ceiling)")
        same_units = {f"the identity term ({cfg.method.value})": cfg.uses_identity,
                      "shared_range": cfg.shared_range}
        needing = [name for name, on in same_units.items() if on]
        if needing and a_channels != b_channels:
            raise UtomError(f"{needing[0]} needs equal channel counts; task {task.name} maps "
                            f"{a_channels} → {b_channels} channels")
        if meta is None:  # fitted once, on rank 0, so that every rank uses the same
            meta = distributed.from_rank0(lambda: fit_run_meta(
                task, cfg, self.images_a, self.images_b, self.ranks.world))
        self.meta = meta
        self.cfg = cfg.model_copy(update={"images_per_epoch": meta.images_per_epoch})
        self.rng = np.random.default_rng([cfg.seed, POOL_KEY, self.ranks.rank])
        t_a = task.domain_a.saliency(meta.normalisation_a, meta.threshold_a)
        t_b = task.domain_b.saliency(meta.normalisation_b, meta.threshold_b)
        self.saliency = saliency_pair(t_a, t_b, cfg.saliency_variant)
        samplers = (TileSampler(self.images_a, meta.normalisation_a, t_a, cfg.tile,
                                cfg.min_content, cfg.augment),
                    TileSampler(self.images_b, meta.normalisation_b, t_b, cfg.tile,
                                cfg.min_content, cfg.augment))
        self.streams = TileStreams(samplers, cfg.batch_size, cfg.seed, self.ranks.rank,
                                   worker_count(cfg.num_workers, self.device), self.device)
        self._build_networks()
        check_tile(self.cfg, self.g_ab, self.d_b, a_channels, self.device)
        self.nets = step_networks(self.g_ab, self.g_ba, self.d_a, self.d_b, self.cfg,
                                  self.device)
        self.validator = Validator(task, meta, self.cfg, val, cut_axes(task)[0],
                                   self.g_ab.size_multiple, self.device) if val else None
        self.iteration = 0
        self.images_seen = 0
        """Images of each domain all ranks have trained on together (ρ counts them)."""
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
        self.g_ab = get_registry().build_generator(cfg, a, b).to(self.device)
        self.g_ba = get_registry().build_generator(cfg, b, a).to(self.device)
        self.d_a = PatchGAN(a, cfg.ndf, cfg.d_layers).to(self.device)
        self.d_b = PatchGAN(b, cfg.ndf, cfg.d_layers).to(self.device)
        self.ema_ab = copy.deepcopy(self.g_ab).requires_grad_(False)
        self.ema_ba = copy.deepcopy(self.g_ba).requires_grad_(False)
        g_params = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        d_params = [*self.d_a.parameters(), *self.d_b.parameters()]
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=cfg.betas, foreach=True)
        self.opt_d = torch.optim.Adam(d_params, lr=cfg.lr, betas=cfg.betas, foreach=True)
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)

    # -- state -------------------------------------------------------------------------
    def state_dict(self, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The full training state; ``ranks``: every rank's own part (this rank's alone)."""
        state = self.model_state()
        state.update(
            d_a=self.d_a.state_dict(), d_b=self.d_b.state_dict(),
            opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
            ranks=ranks or [self.rank_state()], images_seen=self.images_seen,
            lr_resumed=self.lr_resumed,
            validation=self.validator.records() if self.validator else [],
        )
        return state

    def rank_state(self) -> dict[str, Any]:
        return rank_state((self.pool_a, self.pool_b), self.rng, self.streams, self.device)

    def model_state(self) -> dict[str, Any]:
        return dict(
            format=runs.MODEL_FORMAT,
            config=self.cfg.model_dump(mode="json"), meta=self.meta.model_dump(mode="json"),
            g_ab=self.g_ab.state_dict(), g_ba=self.g_ba.state_dict(),
            ema_ab=self.ema_ab.state_dict(), ema_ba=self.ema_ba.state_dict(),
            iteration=self.iteration,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("g_ab", "g_ba", "d_a", "d_b", "ema_ab", "ema_ba", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.iteration, self.images_seen = int(state["iteration"]), int(state["images_seen"])
        restore_rank_state(own_part(state, self.ranks), (self.pool_a, self.pool_b), self.rng,
                           self.streams, self.device)
        resumed = state.get("lr_resumed")  # absent from checkpoints before it was kept
        self.lr_resumed = None if resumed is None else (int(resumed[0]), float(resumed[1]))
        self.saved_at = self.iteration

    def save(self) -> None:
        """Checkpoint (full state, every rank's part gathered) and model file, each replaced
        atomically, by rank 0."""
        ranks = distributed.gather(self.rank_state())
        if ranks is not None:
            save_torch(self.state_dict(ranks), self.run_dir / runs.CHECKPOINT_FILE)
            save_torch(self.model_state(), self.run_dir / runs.MODEL_FILE)
        self.saved_at = self.iteration

    # -- one iteration -----------------------------------------------------------------
    def step(self) -> torch.Tensor:
        """One generator and one discriminator update; returns the loss terms (no sync)."""
        cfg, nets = self.cfg, self.nets
        real_a, real_b = (step_input(batch, cfg) for batch in self.streams.next())
        lr = self.lr()
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        rho_now = rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)

        self.d_a.requires_grad_(False)
        self.d_b.requires_grad_(False)
        with autocast(self.device, cfg.amp):
            fake_b, fake_a = nets.g_ab(real_a), nets.g_ba(real_b)
            rec_a, rec_b = nets.g_ba(fake_b), nets.g_ab(fake_a)
            idt_a = idt_b = None
            if cfg.uses_identity:
                idt_a, idt_b = nets.g_ba(real_a), nets.g_ab(real_b)
            terms = generator_terms(
                cfg, real_a, real_b, fake_b, fake_a, rec_a, rec_b,
                nets.judge_a(fake_a), nets.judge_b(fake_b), self.saliency, rho_now, idt_a, idt_b,
            )
        self.opt_g.zero_grad(set_to_none=True)
        terms["generator"].backward()
        self.opt_g.step()

        self.d_a.requires_grad_(True)
        self.d_b.requires_grad_(True)
        pooled_b = self.pool_b.query(fake_b, self.rng)
        pooled_a = self.pool_a.query(fake_a, self.rng)
        with autocast(self.device, cfg.amp):
            terms["disc_b"] = discriminator_loss(nets.d_b(real_b), nets.d_b(pooled_b))
            terms["disc_a"] = discriminator_loss(nets.d_a(real_a), nets.d_a(pooled_a))
        self.opt_d.zero_grad(set_to_none=True)
        (terms["disc_a"] + terms["disc_b"]).backward()
        self.opt_d.step()

        for ema, net in ((self.ema_ab, self.g_ab), (self.ema_ba, self.g_ba)):
            update_ema(ema, net, cfg.ema_decay, self.iteration)
        self.iteration += 1
        self.images_seen += cfg.batch_size * self.ranks.world
        self.last_batch = (real_a, real_b)
        return torch.stack([terms[name].detach().float() for name in LOSS_TERMS])

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
        if not self.ranks.main:
            return
        save_training_previews(self.run_dir / runs.PREVIEW_DIR, self.iteration, self.ema_ab,
                               self.ema_ba, self.saliency, *self.last_batch)

    # -- the loop ----------------------------------------------------------------------
    def fit(self, stop_at: int | None = None, show_progress: bool = True) -> TrainResult:
        cfg = self.cfg
        end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
        rows: list[Row] = []
        losses: dict[str, float] = {}
        progress = LoopProgress("training", cfg.iterations, self.iteration, unit="iteration",
                                rate_unit="img/s", per_step=cfg.batch_size * self.ranks.world,
                                show=show_progress)
        try:
            with progress.shown(), stop_on_signals(self):
                while self.iteration < end and not self._stop_agreed():
                    rho_now = rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)
                    lr = self.lr()
                    terms = self.step()
                    rows.append((self.iteration, rho_now, lr, terms))
                    done = self.iteration
                    if done % cfg.log_every == 0 or done == end:
                        losses = append_rows(self.run_dir, rows)
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
                    losses = append_rows(self.run_dir, rows)
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
