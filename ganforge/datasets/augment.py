"""Batch augmentations run by the trainer on the device (see ``Dataset.augment``)."""

from __future__ import annotations

import torch


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device)
    flip = (flip < 0.5).to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)
