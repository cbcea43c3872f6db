"""The shift term sees a grid on the generator's lattice and nothing else: zero for a
shift-equivariant generator, large for one that prints a 4-px grid, and a generator trained
against it drops the grid."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from utom_core.methods.losses import shift_term


class Gridded(nn.Module):
    """A 3x3 blur (shift-equivariant) plus ``strength`` on every 4th row of its own input's
    pixel grid: what a stride-2 generator's grid is."""

    def __init__(self, strength: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect", bias=False)
        nn.init.constant_(self.conv.weight, 1 / 9)
        self.strength = nn.Parameter(torch.tensor(strength))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = (torch.arange(x.shape[-2]) % 4 == 0).float().view(-1, 1)
        return self.conv(x) + self.strength * rows


def test_a_shift_equivariant_generator_scores_zero_and_a_gridded_one_does_not():
    x = torch.rand(2, 1, 64, 64)
    for strength, low, high in ((0.0, 0.0, 1e-6), (0.4, 0.05, 0.4)):
        generator = Gridded(strength)
        rng = np.random.default_rng(0)
        scores = [float(shift_term(generator, x, generator(x), rng, 4)) for _ in range(8)]
        assert all(low <= s <= high for s in scores), (strength, scores)


def test_training_against_the_shift_term_takes_the_grid_out():
    generator, x = Gridded(0.4), torch.rand(1, 1, 48, 48)
    rng = np.random.default_rng(1)
    optimiser = torch.optim.SGD([generator.strength], lr=0.1)
    for _ in range(100):
        optimiser.zero_grad()
        shift_term(generator, x, generator(x), rng, 4).backward()
        optimiser.step()
    assert abs(float(generator.strength)) < 0.1  # from 0.4; L1 steps leave it wavering


def test_the_shift_is_off_the_lattice():
    rng, seen = np.random.default_rng(2), set()
    x = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32)
    recorded: list[torch.Tensor] = []

    def first_pixel(crop: torch.Tensor) -> torch.Tensor:
        recorded.append(crop[0, 0, 0, 0])
        return crop

    for _ in range(200):
        shift_term(first_pixel, x, x, rng, 4)
        seen.add(divmod(int(recorded[-1]), 32))
    assert seen == {(dy, dx) for dy in (1, 2, 3) for dx in (1, 2, 3)}
