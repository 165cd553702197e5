"""An MLP discriminator: pixels through a hidden layer to one raw logit per image."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Discriminator, ImageSpec, param, resolve_image_spec
from torch import nn


class MLPDiscriminator(Discriminator):
    """A hidden LeakyReLU layer, then one raw logit per image (the sigmoid belongs to the
    loss)."""

    @attrs.frozen
    class Params:
        """Width and slope of the hidden layer."""

        hidden: int = param(128, "units of the hidden layer", validator=attrs.validators.gt(0))
        leaky_slope: float = param(0.2, "negative slope of LeakyReLU",
                                   validator=attrs.validators.ge(0.0))

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        spec = resolve_image_spec("discriminator", None, None, image_spec)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(spec.shape()), params.hidden),
            nn.LeakyReLU(params.leaky_slope), nn.Linear(params.hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()  # shape (N,)
