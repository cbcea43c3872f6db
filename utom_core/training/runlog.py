"""The loss log (``log.jsonl``): one JSON row per iteration, cut back to the checkpoint on
resume so the resumed run's rows replace what the interrupted one logged after it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from utom_core import runs
from utom_core.console import is_main_process
from utom_core.io.atomic import write_text
from utom_core.training.objective import LOSS_TERMS

Row = tuple[int, float, float, torch.Tensor]
"""(iteration, ρ, learning rate, loss terms on the device) of one iteration."""


def append_rows(run_dir: Path, rows: list[Row]) -> dict[str, float]:
    """Write buffered per-iteration rows (one device sync for the whole buffer); returns the
    last row's loss terms. Under torchrun rank 0 logs its own losses; the others write none."""
    values = torch.stack([r[3] for r in rows]).cpu().tolist()
    if not is_main_process():
        return dict(zip(LOSS_TERMS, values[-1], strict=True))
    lines = []
    for (iteration, rho_now, lr, _), terms in zip(rows, values, strict=True):
        record = {"iteration": iteration, "rho": rho_now, "lr": lr}
        record.update(zip(LOSS_TERMS, terms, strict=True))
        lines.append(json.dumps(record))
    with open(run_dir / runs.LOG_FILE, "a") as log:
        log.write("\n".join(lines) + "\n")
    return dict(zip(LOSS_TERMS, values[-1], strict=True))


def summary(losses: dict[str, float], rho_now: float) -> str:
    """The progress bar's loss column: each pair of terms summed, ρ last."""
    cycle = losses["cycle_a"] + losses["cycle_b"]
    sal = losses["saliency_a"] + losses["saliency_b"]
    disc = losses["disc_a"] + losses["disc_b"]
    return f"G {losses['generator']:.3f} D {disc:.3f} cyc {cycle:.3f} sal {sal:.3f} ρ {rho_now:.3f}"


def truncate_log(run_dir: Path, iteration: int, name: str = runs.LOG_FILE) -> None:
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
