"""The DCGAN generator: project z to 4x4, then fractional-strided convolutions up to size."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import Generator, ImageSpec, param, resolve_image_spec

from .layers import (
    check_dataset_size,
    image_size_validator,
    init_weights,
    norm,
    num_resolution_steps,
)


class DCGANGenerator(Generator):
    """DCGAN's G: ReLU and BatchNorm in every block, Tanh output, no pooling, no FC layers.

    The first layer is a 4x4 transposed convolution from the 1x1 latent (the paper's
    projection of z to 4x4 maps); each following block doubles the resolution and halves
    the channels, ending at ``width`` channels before the output layer.
    """

    @attrs.frozen
    class Params:
        """Shape, prior and ablation switches of the generator."""

        latent_dim: int = param(100, "size of z", validator=attrs.validators.gt(0))
        width: int = param(64, "channels of the last block (the paper's LSUN model: 128)",
                           validator=attrs.validators.gt(0))
        image_size: int | None = param(None, "32, 64 or 128; unset: the dataset's size",
                                       validator=image_size_validator)
        channels: int | None = param(None, "image channels; unset: the dataset's channels")
        prior: str = param("uniform", "latent prior: 'uniform' on [-1, 1] (paper) or 'normal'",
                           validator=attrs.validators.in_(["uniform", "normal"]))
        batchnorm: bool = param(True, "BatchNorm in hidden blocks (false only for ablations)")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        self._spec = resolve_image_spec("generator", params.image_size, params.channels,
                                        image_spec)
        check_dataset_size("generator", self._spec.size)
        steps = num_resolution_steps(self._spec.size)
        bn = params.batchnorm
        channels = params.width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(params.latent_dim, channels, 4, 1, 0, bias=not bn),
            norm(channels, bn),
            nn.ReLU(inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=not bn),
                norm(channels // 2, bn),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, self._spec.channels, 4, 2, 1, bias=False),
                   nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    @property
    def latent_dim(self) -> int:
        return self.params.latent_dim

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        device = device if device is not None else generator.device
        shape = (n, self.params.latent_dim)
        if self.params.prior == "uniform":
            return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)
        return torch.randn(shape, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], -1, 1, 1))
