"""The CycleGAN image pool: discriminators also see generated images from earlier iterations."""

from __future__ import annotations

import numpy as np
import torch


class ImagePool:
    """Keeps up to ``size`` generated images; each query returns new or, half the time, old ones."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif rng.random() < 0.5:
                index = int(rng.integers(self.size))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> list[torch.Tensor]:
        return [image.cpu() for image in self.images]

    def load_state_dict(self, images: list[torch.Tensor], device: torch.device) -> None:
        self.images = [image.to(device) for image in images]
