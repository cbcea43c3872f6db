"""The UTOM training loop: two generators, two PatchGANs, image pools, EMA, full-state resume.

No module-level state: everything a run needs lives on its ``Trainer``, so several runs (or
ranks under torchrun, later) never share anything by accident.
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from utom_core import runs
from utom_core.config import Method, TrainConfig
from utom_core.console import console, progress_display
from utom_core.data import DomainImages, TileSampler, domain_samples, fit_domain
from utom_core.errors import InputError, UtomError
from utom_core.networks import PatchGAN
from utom_core.objective import (
    LOSS_TERMS,
    discriminator_loss,
    generator_terms,
    lr_factor,
    rho,
    saliency_pair,
)
from utom_core.pool import ImagePool
from utom_core.task import Slicing, Task


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    """Iterations completed (the checkpoint's counter)."""
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    """The last logged loss terms."""


def resolve_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise UtomError("--set device=cuda: no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def cut_axes(task: Task) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Planes each domain's volumes are cut into: XZ/YZ for A in isotropic restoration."""
    if task.slicing is Slicing.xz_yz:
        return ("y", "x"), ("z",)
    return ("z",), ("z",)


def fit_run_meta(task: Task, cfg: TrainConfig, images_a: DomainImages,
                 images_b: DomainImages) -> runs.RunMeta:
    """Normalisations and thresholds of both domains, fitted once on sampled pixels."""
    fit_rng = np.random.default_rng([cfg.seed, 1])
    where_a, where_b = _where("A", images_a), _where("B", images_b)
    samples_a = domain_samples(images_a, fit_rng, cfg.sample_pixels, where_a)
    samples_b = domain_samples(images_b, fit_rng, cfg.sample_pixels, where_b)
    both = np.concatenate([samples_a, samples_b], axis=1) if cfg.shared_range else None
    norm_a, thr_a = fit_domain(samples_a, task.domain_a, cfg.threshold_a, cfg.threshold_method,
                               where_a, both)
    norm_b, thr_b = fit_domain(samples_b, task.domain_b, cfg.threshold_b, cfg.threshold_method,
                               where_b, both)
    return runs.RunMeta(
        task=task.name, domain_a=task.domain_a, domain_b=task.domain_b, slicing=task.slicing,
        normalisation_a=norm_a, normalisation_b=norm_b, threshold_a=thr_a, threshold_b=thr_b,
        inputs_a=[str(src.path) for src in images_a.sources],
        inputs_b=[str(src.path) for src in images_b.sources],
        images_per_epoch=cfg.decay_length(),
    )


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float,
               iteration: int) -> None:
    """Move ``ema``'s weights towards ``model``'s; the decay warms up over the first
    iterations so the average does not keep the random initialisation."""
    if decay == 0:
        ema.load_state_dict(model.state_dict())
        return
    decay = min(decay, (1 + iteration) / (10 + iteration))
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


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
        self.g_ab = runs.build_generator(cfg, a, b).to(self.device)
        self.g_ba = runs.build_generator(cfg, b, a).to(self.device)
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
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UtomError(f"tile {cfg.tile}: too small for these networks (generator "
                            f"{cfg.generator}, d_layers {cfg.d_layers}): {first[:160]}; use a "
                            "larger tile or shallower networks") from None

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
        runs.atomic_torch_save(self.state_dict(), self.run_dir / runs.CHECKPOINT_FILE)
        runs.atomic_torch_save(self.model_state(), self.run_dir / runs.MODEL_FILE)
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

    # -- logging and previews ----------------------------------------------------------
    def _flush(self, rows: list[tuple[int, float, float, torch.Tensor]]) -> dict[str, float]:
        """Write buffered per-iteration rows (one device sync for the whole buffer)."""
        values = torch.stack([r[3] for r in rows]).cpu().tolist()
        lines = []
        for (iteration, rho_now, lr, _), terms in zip(rows, values, strict=True):
            record = {"iteration": iteration, "rho": rho_now, "lr": lr}
            record.update(zip(LOSS_TERMS, terms, strict=True))
            lines.append(json.dumps(record))
        with open(self.run_dir / runs.LOG_FILE, "a") as log:
            log.write("\n".join(lines) + "\n")
        return dict(zip(LOSS_TERMS, values[-1], strict=True))

    def preview(self) -> None:
        """a | G(a) | F(G(a)) | T_a(a) | T_b(G(a)), and the same for b, as PNG."""
        from utom_core.previews import save_panel

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
        rows: list[tuple[int, float, float, torch.Tensor]] = []
        losses: dict[str, float] = {}
        progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            console=console, disable=not show_progress, transient=False,
        )
        try:
            with progress_display(progress), _stop_on_sigint(self):
                bar = progress.add_task("train", total=cfg.iterations, completed=self.iteration,
                                        losses="")
                while self.iteration < end and not self.stop_requested:
                    rho_now = rho(self.images_seen, cfg.rho0, self.meta.images_per_epoch)
                    lr = cfg.lr * lr_factor(self.iteration, cfg.iterations, cfg.lr_decay_start)
                    terms = self.step()
                    rows.append((self.iteration, rho_now, lr, terms))
                    done = self.iteration
                    if done % cfg.log_every == 0 or done == end:
                        losses = self._flush(rows)
                        rows.clear()
                        progress.update(bar, completed=done, losses=_summary(losses, rho_now))
                    else:
                        progress.update(bar, completed=done)
                    if done % cfg.preview_every == 0 or done == end:
                        self.preview()
                    if done % cfg.checkpoint_every == 0 or done == end:
                        self.save()
                if rows:
                    losses = self._flush(rows)
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


def _where(side: str, images: DomainImages) -> str:
    """``domain A (name: file, …)``: what a message about a whole domain refers to."""
    names = [src.path.name for src in images.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"domain {side} ({images.domain.name}: {shown})"


def _summary(losses: dict[str, float], rho_now: float) -> str:
    cycle = losses["cycle_a"] + losses["cycle_b"]
    sal = losses["saliency_a"] + losses["saliency_b"]
    disc = losses["disc_a"] + losses["disc_b"]
    return f"G {losses['generator']:.3f} D {disc:.3f} cyc {cycle:.3f} sal {sal:.3f} ρ {rho_now:.3f}"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and the SIGTERM a batch scheduler sends before it kills a job at its time limit."""


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer):
    """Ctrl-C (or SIGTERM) asks the loop to stop after the current iteration and save a
    checkpoint; a second one stops at once (the last complete checkpoint stays intact)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if trainer.stop_requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        trainer.stop_requested = True
        console.print("interrupt: saving a checkpoint after this iteration (Ctrl-C again to abort)")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _truncate_log(run_dir: Path, iteration: int) -> None:
    """Drop log rows past the checkpoint being resumed; they will be recomputed."""
    log = run_dir / runs.LOG_FILE
    if not log.exists():
        return
    kept = [line for line in log.read_text().splitlines() if _logged_at(line) <= iteration]
    runs.atomic_write_text(log, "".join(line + "\n" for line in kept))


def _logged_at(line: str) -> float:
    """A log row's iteration; a row torn by a killed process counts as past every checkpoint."""
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def train(
    task: Task, cfg: TrainConfig, run_dir: Path, a_paths: list[Path] | None = None,
    b_paths: list[Path] | None = None, *, resume: bool = False, overwrite: bool = False,
    iterations: int | None = None, stop_at: int | None = None, show_progress: bool = True,
) -> TrainResult:
    """Train a new run in ``run_dir`` or resume the one there.

    ``iterations`` (resume) sets a new total; ``stop_at`` ends this call early at that
    iteration with a checkpoint, as an interruption would.
    """
    run_dir = Path(run_dir)
    runs.check_run_dir(run_dir, resume, overwrite)
    if resume:
        checkpoint = run_dir / runs.CHECKPOINT_FILE
        saved, meta, state = runs.load_run(checkpoint)
        if meta.task != task.name:
            raise UtomError(f"{run_dir}: was trained for task {meta.task!r}, not {task.name!r}")
        if iterations is not None:
            saved = saved.model_copy(update={"iterations": iterations})
        trainer = Trainer(task, saved, run_dir,
                          a_paths or [Path(p) for p in meta.inputs_a],
                          b_paths or [Path(p) for p in meta.inputs_b], meta)
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(checkpoint, f"cannot resume from it ({first[:200]})") from None
        runs.prepare_run_dir(run_dir, resume, overwrite)
        _truncate_log(run_dir, trainer.iteration)
    else:
        if not a_paths or not b_paths:
            raise UtomError("training needs images for both domains (--a and --b)")
        # inputs, settings and networks are checked before the directory is created (or an
        # old run replaced): a refused run changes nothing on disk
        trainer = Trainer(task, cfg, run_dir, a_paths, b_paths)
        runs.prepare_run_dir(run_dir, resume, overwrite)
    runs.write_json(run_dir / runs.CONFIG_FILE, trainer.cfg.model_dump(mode="json"))
    runs.write_json(run_dir / runs.META_FILE, trainer.meta.model_dump(mode="json"))
    return trainer.fit(stop_at=stop_at, show_progress=show_progress)
