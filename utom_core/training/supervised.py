"""The supervised ceiling: a U-Net trained with L1 on aligned (input, target) pairs.

Unpaired methods are judged against what paired training reaches with the same budget (network
width, tile, iterations); this is the bench's ``supervised`` row. It writes a run directory
that ``load_model`` reads (a → b only), so prediction and evaluation are the same code as
for UTOM. Where a task cannot build aligned pairs, the ceiling does not apply.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utom_core import trained
from utom_core.checkpoints import save_torch
from utom_core.config import TrainConfig
from utom_core.data.images import DomainImages
from utom_core.data.sampling import random_orientation, warn_tile_exceeds
from utom_core.device import resolve_device
from utom_core.errors import InputError, UtomError
from utom_core.io import FormatTable
from utom_core.io.atomic import write_json, write_text
from utom_core.methods.base import adam
from utom_core.networks.base import GeneratorBuilder
from utom_core.progress import LoopProgress
from utom_core.run_folders import check_run_dir, prepare_run_dir
from utom_core.task import Task
from utom_core.training.ema import update_ema
from utom_core.training.meta import cut_axes, fit_run_meta
from utom_core.training.runlog import check_finite
from utom_core.training.schedules import lr_factor
from utom_core.training.trainer import TrainResult

CEILING_GENERATOR = "unet"
"""The ceiling's network: a U-Net, the usual supervised restoration baseline (CARE-like)."""


def ceiling_depth(tile: int, depth: int) -> int:
    """The U-Net's levels for ``tile``: at most ``depth``, each halving the tile exactly (the
    unpaired budgets choose tiles for the ResNet, e.g. 40 px, which 4 levels cannot halve)."""
    while depth > 1 and tile % 2**depth:
        depth -= 1
    return depth


class NoPairs(UtomError):
    """The task's data has no aligned pairs, so the supervised ceiling does not apply."""


class PairedTiles:
    """Aligned windows: the same plane and position of an input and its target."""

    def __init__(self, task: Task, pairs: list[tuple[Path, Path]],
                 formats: FormatTable | None = None) -> None:
        axes, _ = cut_axes(task)  # targets are cut like the inputs, so planes correspond
        self.inputs = DomainImages([a for a, _ in pairs], task.domain_a, axes, formats)
        try:
            self.targets = DomainImages([b for _, b in pairs], task.domain_b, axes, formats)
        except BaseException:
            self.inputs.close()
            raise
        for source, target in zip(self.inputs.sources, self.targets.sources, strict=True):
            if source.info.shape[1:] != target.info.shape[1:]:
                self.close()
                raise InputError(target.path, f"shape {target.info.shape[1:]} is not aligned "
                                              f"with its input {source.path.name} "
                                              f"{source.info.shape[1:]}")

    def close(self) -> None:
        self.inputs.close()
        self.targets.close()

    def batch(self, rng: np.random.Generator, size: int, count: int, meta: trained.RunMeta,
              augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(count):
            index, y, x = self.inputs.random_position(rng, size)
            pair = [norm.apply(images.read(images.planes[index], y, x, size))
                    for images, norm in ((self.inputs, meta.normalisation_a),
                                         (self.targets, meta.normalisation_b))]
            if augment:
                pair = random_orientation(rng, *pair, quarter_turns=self.inputs.quarter_turns)
            xs.append(np.ascontiguousarray(pair[0], dtype=np.float32))
            ys.append(np.ascontiguousarray(pair[1], dtype=np.float32))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _fitted_meta(task: Task, cfg: TrainConfig, tiles: PairedTiles,
                 fit_on: tuple[list[Path], list[Path]] | None,
                 formats: FormatTable | None) -> trained.RunMeta:
    """Normalisations and thresholds: fitted on ``fit_on`` (the unpaired runs' A and B images,
    so the ceiling is scored on the very scale the unpaired methods are), else on the pairs."""
    if fit_on is None:
        return fit_run_meta(task, cfg, tiles.inputs, tiles.targets)
    axes_a, axes_b = cut_axes(task)
    images_a = DomainImages(fit_on[0], task.domain_a, axes_a, formats)
    try:
        images_b = DomainImages(fit_on[1], task.domain_b, axes_b, formats)
        try:
            return fit_run_meta(task, cfg, images_a, images_b)
        finally:
            images_b.close()
    finally:
        images_a.close()


def train_supervised(task: Task, cfg: TrainConfig, run_dir: Path,
                     pairs: list[tuple[Path, Path]], *, build_generator: GeneratorBuilder,
                     formats: FormatTable | None = None,
                     fit_on: tuple[list[Path], list[Path]] | None = None,
                     overwrite: bool = False, show_progress: bool = True) -> TrainResult:
    """Train the ceiling on ``pairs`` for ``cfg.iterations`` and write ``run_dir``.

    ``build_generator`` builds its U-Net; ``formats`` opens the images (None: io's built-ins).
    """
    if not pairs:
        raise NoPairs(f"task {task.name}: its data has no aligned pairs, so the supervised "
                      "ceiling does not apply")
    cfg = cfg.model_copy(update={"generator": CEILING_GENERATOR,
                                 "unet_depth": ceiling_depth(cfg.tile, cfg.unet_depth)})
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume=False, overwrite=overwrite)
    tiles = PairedTiles(task, pairs, formats)
    try:
        meta = _fitted_meta(task, cfg, tiles, fit_on, formats)
        device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        net = build_generator(cfg, task.domain_a.channels, task.domain_b.channels).to(device)
        warn_tile_exceeds(tiles.inputs, cfg.tile, net.size_multiple)
        ema = copy.deepcopy(net).requires_grad_(False)
        optimiser = adam({"net": net}, cfg, "net")
        rng = np.random.default_rng(cfg.seed)
        prepare_run_dir(run_dir, resume=False, overwrite=overwrite)
        write_json(run_dir / trained.CONFIG_FILE, cfg.model_dump(mode="json"))
        write_json(run_dir / trained.META_FILE, meta.model_dump(mode="json"))
        losses: list[torch.Tensor] = []
        progress = LoopProgress("supervised", cfg.iterations, unit="iteration",
                                rate_unit="img/s", per_step=cfg.batch_size, show=show_progress)
        with progress.shown():
            for iteration in range(cfg.iterations):
                x, y = (t.to(device) for t in tiles.batch(rng, cfg.tile, cfg.batch_size, meta,
                                                          cfg.augment))
                for group in optimiser.param_groups:
                    group["lr"] = cfg.lr * lr_factor(iteration, cfg.iterations,
                                                     cfg.lr_decay_start)
                loss = F.l1_loss(net(x), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                update_ema(ema, net, cfg.ema_decay, iteration)
                losses.append(loss.detach())
                if (iteration + 1) % cfg.log_every == 0:
                    progress.update(iteration + 1, note=f"L1 {float(losses[-1]):.4f}")
                else:
                    progress.update(iteration + 1)
    finally:
        tiles.close()
    values = torch.stack(losses).cpu().tolist() if losses else []
    write_text(run_dir / trained.LOG_FILE, "".join(
        json.dumps({"iteration": i + 1, "l1": v}) + "\n" for i, v in enumerate(values)))
    check_finite(range(1, len(values) + 1), [[v] for v in values], ("l1",))
    save_torch(
        dict(format=trained.MODEL_FORMAT, config=cfg.model_dump(mode="json"),
             meta=meta.model_dump(mode="json"), g_ab=net.state_dict(), ema_ab=ema.state_dict(),
             iteration=cfg.iterations),
        run_dir / trained.MODEL_FILE)
    return TrainResult(run_dir, cfg.iterations, False, {"l1": values[-1]} if values else {},
                       meta)
