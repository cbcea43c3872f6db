"""The UTOM training loop: two generators, two PatchGANs, image pools, EMA, full-state resume.

No module-level state: everything a run needs lives on its ``Trainer``, so several runs (or
ranks under torchrun, later) never share anything by accident.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from utom_core import runs
from utom_core.checkpoints import save_torch
from utom_core.config import Method, TrainConfig
from utom_core.console import console, progress_display
from utom_core.data.images import DomainImages
from utom_core.data.sampling import TileSampler
from utom_core.device import resolve_device
from utom_core.errors import UtomError, first_line
from utom_core.networks import PatchGAN
from utom_core.plugins import get_registry
from utom_core.task import Task
from utom_core.training.ema import update_ema
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
from utom_core.training.runlog import Row, append_rows, summary
from utom_core.training.signals import stop_on_signals


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    """Iterations completed (the checkpoint's counter)."""
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    """The last logged loss terms."""


class Trainer:
    """One training run in one run directory."""

    def __init__(self, task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path],
                 b_paths: list[Path], meta: runs.RunMeta | None = None) -> None:
        self.task, self.run_dir = task, run_dir
        self.device = resolve_device(cfg.device)
        axes_a, axes_b = cut_axes(task)
        self.images_a = DomainImages(a_paths, task.domain_a, axes_a)
        try:
            self.images_b = DomainImages(b_paths, task.domain_b, axes_b)
            self._setup(task, cfg, meta)
        except BaseException:
            self.images_a.close()
            if hasattr(self, "images_b"):
                self.images_b.close()
            raise

    def _setup(self, task: Task, cfg: TrainConfig, meta: runs.RunMeta | None) -> None:
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
        if meta is None:
            meta = fit_run_meta(task, cfg, self.images_a, self.images_b)
        self.meta = meta
        self.cfg = cfg.model_copy(update={"images_per_epoch": meta.images_per_epoch})
        self.rng = np.random.default_rng(cfg.seed)
        t_a = task.domain_a.saliency(meta.normalisation_a, meta.threshold_a)
        t_b = task.domain_b.saliency(meta.normalisation_b, meta.threshold_b)
        self.saliency = saliency_pair(t_a, t_b, cfg.saliency_variant)
        self.sampler_a = TileSampler(self.images_a, meta.normalisation_a, t_a, cfg.tile,
                                     cfg.min_content, cfg.augment)
        self.sampler_b = TileSampler(self.images_b, meta.normalisation_b, t_b, cfg.tile,
                                     cfg.min_content, cfg.augment)
        self._build_networks()
        self._check_tile()
        self.iteration = 0
        self.images_seen = 0
        self.stop_requested = False
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

    def _check_tile(self) -> None:
        """Refuse a tile size the networks cannot process, before anything is written."""
        cfg, multiple = self.cfg, self.g_ab.size_multiple
        if cfg.tile % multiple:
            raise UtomError(f"tile {cfg.tile}: the {cfg.generator} generator needs a multiple "
                            f"of {multiple} pixels")
        x = torch.zeros(1, self.task.domain_a.channels, cfg.tile, cfg.tile, device=self.device)
        try:  # one dry forward pass through G and D; the RNG is left as it was
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                self.d_b(self.g_ab(x))
        except (RuntimeError, ValueError) as err:
            if type(err).__name__ == "OutOfMemoryError":
                raise
            raise UtomError(f"tile {cfg.tile}: too small for these networks (generator "
                            f"{cfg.generator}, d_layers {cfg.d_layers}): {first_line(err, 160)}; "
                            "use a larger tile or shallower networks") from None

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = self.model_state()
        state.update(
            d_a=self.d_a.state_dict(), d_b=self.d_b.state_dict(),
            opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
            pool_a=self.pool_a.state_dict(), pool_b=self.pool_b.state_dict(),
            rng=self.rng.bit_generator.state, torch_rng=torch.get_rng_state(),
            iteration=self.iteration, images_seen=self.images_seen,
        )
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

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
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.iteration, self.images_seen = int(state["iteration"]), int(state["images_seen"])
        self.saved_at = self.iteration

    def save(self) -> None:
        """Checkpoint (full state) and model file, each replaced atomically."""
        save_torch(self.state_dict(), self.run_dir / runs.CHECKPOINT_FILE)
        save_torch(self.model_state(), self.run_dir / runs.MODEL_FILE)
        self.saved_at = self.iteration

    # -- one iteration -----------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self) -> torch.Tensor:
        """One generator and one discriminator update; returns the loss terms (no sync)."""
        cfg = self.cfg
        real_a = self.sampler_a.tile_batch(self.rng, cfg.batch_size).to(self.device)
        real_b = self.sampler_b.tile_batch(self.rng, cfg.batch_size).to(self.device)
        factor = lr_factor(self.iteration, cfg.iterations, cfg.lr_decay_start)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
        rho_now = rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)

        self.d_a.requires_grad_(False)
        self.d_b.requires_grad_(False)
        with self._autocast():
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
            rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
            idt_a = idt_b = None
            if cfg.uses_identity:
                idt_a, idt_b = self.g_ba(real_a), self.g_ab(real_b)
            terms = generator_terms(
                cfg, real_a, real_b, fake_b, fake_a, rec_a, rec_b,
                self.d_a(fake_a), self.d_b(fake_b), self.saliency, rho_now, idt_a, idt_b,
            )
        self.opt_g.zero_grad(set_to_none=True)
        terms["generator"].backward()
        self.opt_g.step()

        self.d_a.requires_grad_(True)
        self.d_b.requires_grad_(True)
        pooled_b = self.pool_b.query(fake_b, self.rng)
        pooled_a = self.pool_a.query(fake_a, self.rng)
        with self._autocast():
            terms["disc_b"] = discriminator_loss(self.d_b(real_b), self.d_b(pooled_b))
            terms["disc_a"] = discriminator_loss(self.d_a(real_a), self.d_a(pooled_a))
        self.opt_d.zero_grad(set_to_none=True)
        (terms["disc_a"] + terms["disc_b"]).backward()
        self.opt_d.step()

        self._update_ema()
        self.iteration += 1
        self.images_seen += cfg.batch_size
        self.last_batch = (real_a, real_b)
        return torch.stack([terms[name].detach().float() for name in LOSS_TERMS])

    def _update_ema(self) -> None:
        update_ema(self.ema_ab, self.g_ab, self.cfg.ema_decay, self.iteration)
        update_ema(self.ema_ba, self.g_ba, self.cfg.ema_decay, self.iteration)

    # -- previews ----------------------------------------------------------------------
    def preview(self) -> None:
        """a | G(a) | F(G(a)) | T_a(a) | T_b(G(a)), and the same for b, as PNG."""
        from utom_core.evaluation.figures.panels import save_panel

        real_a, real_b = (t[:1] for t in self.last_batch)
        with torch.no_grad():
            fake_b = self.ema_ab(real_a)
            fake_a = self.ema_ba(real_b)
            rows = [
                [real_a, fake_b, self.ema_ba(fake_b),
                 2 * self.saliency.real_a(real_a) - 1, 2 * self.saliency.fake_b(fake_b) - 1],
                [real_b, fake_a, self.ema_ab(fake_a),
                 2 * self.saliency.real_b(real_b) - 1, 2 * self.saliency.fake_a(fake_a) - 1],
            ]
        labels = (["a", "G(a)", "F(G(a))", "T(a)", "T(G(a))"],
                  ["b", "F(b)", "G(F(b))", "T(b)", "T(F(b))"])
        for name, row, label in zip(("a2b", "b2a"), rows, labels, strict=True):
            save_panel(self.run_dir / runs.PREVIEW_DIR / f"{name}_{self.iteration:07d}.png",
                       [t[0].float().cpu().numpy() for t in row], label)

    # -- the loop ----------------------------------------------------------------------
    def fit(self, stop_at: int | None = None, show_progress: bool = True) -> TrainResult:
        cfg = self.cfg
        end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
        rows: list[Row] = []
        losses: dict[str, float] = {}
        progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            console=console, disable=not show_progress, transient=False,
        )
        try:
            with progress_display(progress), stop_on_signals(self):
                bar = progress.add_task("train", total=cfg.iterations, completed=self.iteration,
                                        losses="")
                while self.iteration < end and not self.stop_requested:
                    rho_now = rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)
                    lr = cfg.lr * lr_factor(self.iteration, cfg.iterations, cfg.lr_decay_start)
                    terms = self.step()
                    rows.append((self.iteration, rho_now, lr, terms))
                    done = self.iteration
                    if done % cfg.log_every == 0 or done == end:
                        losses = append_rows(self.run_dir, rows)
                        rows.clear()
                        progress.update(bar, completed=done, losses=summary(losses, rho_now))
                    else:
                        progress.update(bar, completed=done)
                    if done % cfg.preview_every == 0 or done == end:
                        self.preview()
                    if done % cfg.checkpoint_every == 0 or done == end:
                        self.save()
                if rows:
                    losses = append_rows(self.run_dir, rows)
                if self.stop_requested:
                    self.save()
        except OSError as err:  # disk full, read-only folder: the last checkpoint stays intact
            kept = (f"the checkpoint of iteration {self.saved_at} is intact (--resume)"
                    if self.saved_at is not None else "no checkpoint was written yet")
            raise UtomError(f"{err.filename or self.run_dir}: {err.strerror or err}; training "
                            f"stopped at iteration {self.iteration}; {kept}") from None
        finally:
            self.images_a.close()
            self.images_b.close()
        return TrainResult(self.run_dir, self.iteration, self.stop_requested, losses)
