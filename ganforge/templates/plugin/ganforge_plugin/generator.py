"""An MLP generator: z through two hidden layers to pixels, for any image shape."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Generator, ImageSpec, param, resolve_image_spec
from torch import nn


class MLPGenerator(Generator):
    """Two hidden ReLU layers from z to pixels and a Tanh, so images lie in [-1, 1]."""

    @attrs.frozen
    class Params:
        """Size of z and of the hidden layers."""

        latent_dim: int = param(64, "size of z", validator=attrs.validators.gt(0))
        hidden: int = param(128, "units per hidden layer", validator=attrs.validators.gt(0))

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        # The image shape comes from the dataset (its ImageSpec).
        self._spec = resolve_image_spec("generator", None, None, image_spec)
        self.net = nn.Sequential(
            nn.Linear(params.latent_dim, params.hidden), nn.ReLU(),
            nn.Linear(params.hidden, params.hidden), nn.ReLU(),
            nn.Linear(params.hidden, math.prod(self._spec.shape())), nn.Tanh())

    @property
    def latent_dim(self) -> int:
        return self.params.latent_dim

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """A standard normal prior, drawn from the seeded generator only (exact resume)."""
        device = device if device is not None else generator.device
        return torch.randn(n, self.params.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # reshape, not view: the trainer may hand channels_last tensors around.
        return self.net(z).reshape(z.shape[0], *self._spec.shape())
