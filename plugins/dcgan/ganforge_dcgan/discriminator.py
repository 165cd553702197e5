"""The DCGAN discriminator: strided convolutions down to 4x4, then one logit per image."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import Discriminator, ImageSpec, param, resolve_image_spec

from .layers import (
    check_dataset_size,
    image_size_validator,
    init_weights,
    norm,
    num_resolution_steps,
)


class DCGANDiscriminator(Discriminator):
    """DCGAN's D: LeakyReLU in every block, BatchNorm except on the input block.

    Returns raw logits of shape ``(N,)``; the sigmoid belongs to the loss.
    """

    @attrs.frozen
    class Params:
        """Shape and ablation switches of the discriminator."""

        width: int = param(64, "channels of the first block (the paper's LSUN model: 128)",
                           validator=attrs.validators.gt(0))
        image_size: int | None = param(None, "32, 64 or 128; unset: the dataset's size",
                                       validator=image_size_validator)
        channels: int | None = param(None, "image channels; unset: the dataset's channels")
        batchnorm: bool = param(True, "BatchNorm in hidden blocks (false only for ablations)")
        leaky_slope: float = param(0.2, "negative slope of LeakyReLU (paper: 0.2)",
                                   validator=attrs.validators.ge(0.0))

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        spec = resolve_image_spec("discriminator", params.image_size, params.channels,
                                  image_spec)
        check_dataset_size("discriminator", spec.size)
        self.image_spec = spec
        steps = num_resolution_steps(spec.size)
        bn, slope = params.batchnorm, params.leaky_slope
        channels = params.width
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels, channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(slope, inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=not bn),
                norm(channels * 2, bn),
                nn.LeakyReLU(slope, inplace=True),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()
