"""Preview panels during training: what the EMA generators make of the last batch, and the
content maps L_sc compares, so a user can see a run go right (or wrong) while it trains."""

from __future__ import annotations

from pathlib import Path

import torch

from utom_core.evaluation.figures import panels
from utom_core.methods.losses import SaliencyPair
from utom_core.networks.base import Generator


def save_training_previews(folder: Path, iteration: int, g_ab: Generator, g_ba: Generator | None,
                           saliency: SaliencyPair, real_a: torch.Tensor,
                           real_b: torch.Tensor) -> None:
    """a | G(a) | F(G(a)) | T_a(a) | T_b(G(a)), and the same for b, as PNG; a one-sided
    method (no F) shows a | G(a) | T_a(a) | T_b(G(a)) and b | G(b) where channels allow."""
    real_a, real_b = real_a[:1], real_b[:1]
    with torch.no_grad():
        fake_b = g_ab(real_a)
        if g_ba is None:
            rows = {"a2b": ([real_a, fake_b, 2 * saliency.real_a(real_a) - 1,
                             2 * saliency.fake_b(fake_b) - 1], ["a", "G(a)", "T(a)", "T(G(a))"])}
            if real_a.shape[1] == real_b.shape[1]:
                rows["b2b"] = ([real_b, g_ab(real_b)], ["b", "G(b)"])
        else:
            fake_a = g_ba(real_b)
            rows = {
                "a2b": ([real_a, fake_b, g_ba(fake_b), 2 * saliency.real_a(real_a) - 1,
                         2 * saliency.fake_b(fake_b) - 1],
                        ["a", "G(a)", "F(G(a))", "T(a)", "T(G(a))"]),
                "b2a": ([real_b, fake_a, g_ab(fake_a), 2 * saliency.real_b(real_b) - 1,
                         2 * saliency.fake_a(fake_a) - 1],
                        ["b", "F(b)", "G(F(b))", "T(b)", "T(F(b))"]),
            }
    for name, (row, labels) in rows.items():
        panels.save_panel(folder / f"{name}_{iteration:07d}.png",
                          [t[0].float().cpu().numpy() for t in row], labels)
