"""Sample grids: images from a generator laid out and written as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from ..interfaces import Generator


@torch.no_grad()
def generate(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    """Images for latents ``z`` in eval mode (BatchNorm running statistics), in [-1, 1]."""
    was_training = generator.training
    generator.eval()
    try:
        return generator(z).float().clamp(-1.0, 1.0)
    finally:
        generator.train(was_training)


def image_grid(images: torch.Tensor) -> torch.Tensor:
    """A near-square grid (CHW, values in [0, 1]) of images in [-1, 1]."""
    nrow = max(1, math.ceil(math.sqrt(images.shape[0])))
    return make_grid(images.detach().cpu(), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1.0, 1.0), pad_value=1.0)


def write_grid(grid: torch.Tensor, path: Path) -> Path:
    """Write a grid from :func:`image_grid` as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path
