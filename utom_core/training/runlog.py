"""The loss log (``log.jsonl``): one JSON row per iteration, cut back to the checkpoint on
resume so the resumed run's rows replace what the interrupted one logged after it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.console import is_main_process
from utom_core.errors import UtomError
from utom_core.io.atomic import write_text
from utom_core.training import distributed

Row = tuple[int, float | None, float, torch.Tensor]
"""(iteration, ρ (None: the method has no saliency term), learning rate, loss terms on the
device) of one iteration."""


def log_due(done: int, end: int, cfg: TrainConfig) -> bool:
    """Whether the buffered rows are written (and checked, ``check_finite``) after iteration
    ``done``: every ``log_every``, at the end, and before anything is made of the weights (a
    checkpoint, a validation, a preview), so that no NaN weights are ever saved."""
    return done == end or any(done % every == 0 for every in (
        cfg.log_every, cfg.checkpoint_every, cfg.val_every, cfg.preview_every))


def append_rows(run_dir: Path, rows: list[Row], names: tuple[str, ...]) -> dict[str, float]:
    """Write buffered per-iteration rows of the loss terms ``names`` (one device sync for the
    whole buffer), then ``check_finite`` them; returns the last row's terms. Under torchrun
    rank 0 logs its own losses; the others write none."""
    values = torch.stack([r[3] for r in rows]).cpu().tolist()
    if is_main_process():
        lines = []
        for (iteration, rho_now, lr, _), terms in zip(rows, values, strict=True):
            record: dict[str, float] = {"iteration": iteration}
            record |= {"rho": rho_now} if rho_now is not None else {}
            record["lr"] = lr
            record.update(zip(names, terms, strict=True))
            lines.append(json.dumps(record))
        with open(run_dir / trained.LOG_FILE, "a") as log:
            log.write("\n".join(lines) + "\n")
    check_finite([row[0] for row in rows], values, names)
    return dict(zip(names, values[-1], strict=True))


def check_finite(iterations: Sequence[int], values: list[list[float]],
                 names: tuple[str, ...]) -> None:
    """Stop a run whose loss became NaN or infinite (UtomError): its weights are then NaN
    too, so every later iteration, validation and prediction would be lost time ending in an
    image of NaNs. Under torchrun every rank stops at the same write (one rank's NaN reaches
    the others' weights only at the next step), and rank 0 says it."""
    bad = next(((iteration, [name for name, value in zip(names, terms, strict=True)
                             if not math.isfinite(value)])
                for iteration, terms in zip(iterations, values, strict=True)
                if not all(math.isfinite(value) for value in terms)), None)
    if not distributed.any_rank(bad is not None):
        return
    raise _diverged(f"at iteration {bad[0]} ({', '.join(bad[1])} not finite)" if bad is not None
                    else "in another process of the job", iterations[-1])


def check_weights(nets: Iterable[nn.Module], iteration: int) -> None:
    """Refuse to save NaN or infinite weights (UtomError): an update can make them while
    the loss it followed was finite, and only the next loss shows it."""
    if not all(bool(torch.isfinite(p).all()) for net in nets for p in net.parameters()):
        raise _diverged(f"at iteration {iteration} (weights not finite)", iteration)


def _diverged(where: str, stopped: int) -> UtomError:
    return UtomError(f"training diverged {where} and stopped at iteration {stopped}, saving "
                     "nothing of its NaN weights: train anew (--overwrite) with another --seed, "
                     "a lower --set lr or --set amp=false")


SHOWN = {"cyc": "cycle", "nce": "nce", "sal": "saliency"}
"""Progress-bar abbreviations of the paired terms a method logs (name_a + name_b)."""


def summary(losses: dict[str, float], rho_now: float | None) -> str:
    """The progress bar's loss column: G, D, and each paired term the method logs, summed
    over its sides; ρ last, where the method has one."""
    def total(prefix: str) -> float:
        return sum(v for k, v in losses.items() if k.rpartition("_")[0] == prefix)

    parts = [f"G {losses['generator']:.3f}", f"D {total('disc'):.3f}"]
    parts += [f"{short} {total(name):.3f}" for short, name in SHOWN.items()
              if any(k.rpartition("_")[0] == name for k in losses)]
    parts += [f"ρ {rho_now:.3f}"] if rho_now is not None else []
    return " ".join(parts)


def truncate_log(run_dir: Path, iteration: int, name: str = trained.LOG_FILE) -> None:
    """Drop log rows past the checkpoint being resumed; they will be recomputed."""
    log = run_dir / name
    if not log.exists():
        return
    kept = [line for line in log.read_text().splitlines() if _logged_at(line) <= iteration]
    write_text(log, "".join(line + "\n" for line in kept))


def _logged_at(line: str) -> float:
    """A log row's iteration; a row torn by a killed process counts as past every checkpoint."""
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return float("inf")
