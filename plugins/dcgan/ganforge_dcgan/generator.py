"""The DCGAN generator: project z to 4x4, then fractional-strided convolutions up to size."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import Generator, ImageSpec, param, resolve_image_spec

from .layers import (
    check_dataset_size,
    class_weights,
    image_size_validator,
    init_weights,
    label_classes,
    norm,
    num_resolution_steps,
    refuse_labels,
)


class DCGANGenerator(Generator):
    """DCGAN's G: ReLU and BatchNorm in every block, Tanh output, no pooling, no FC layers.

    The first layer is a 4x4 transposed convolution from the 1x1 latent (the paper's
    projection of z to 4x4 maps); each following block doubles the resolution and halves
    the channels, ending at ``width`` channels before the output layer.

    **Conditional** (``conditional = true``): called as ``G(z, y)``, the label is
    concatenated to z as a one-hot vector (or as the class weights given, shape
    ``(N, classes)``) before the first transposed convolution, whose input channels become
    ``latent_dim + classes``; the rest of the network is unchanged. This is how the paper's
    authors conditioned their MNIST model (Radford et al.'s dcgan_code,
    ``mnist/train_cond_dcgan.py``: ``Z = T.concatenate([Z, Y], axis=1)`` in ``gen``).
    They also concatenated the label again before every later layer; this generator does
    it at the input only. The extra input weights are drawn from N(0, 0.02) like the rest,
    and at ``conditional = false`` the network (its modules, parameters and state_dict) is
    exactly the unconditional one.

    BatchNorm follows the first layer, so in training mode the label acts through how it
    differs from the rest of the batch: a training batch of a single class gets no label
    signal at all. Train on batches of mixed classes (as drawn by ``run.fake_labels``);
    in eval mode (sampling) the running statistics make every image follow its own label.
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
        conditional: bool = param(False, "class-conditional: G(z, y) with the label one-hot "
                                  "concatenated to z (as in the paper's MNIST code); needs a "
                                  "dataset with classes")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        self._spec = resolve_image_spec("generator", params.image_size, params.channels,
                                        image_spec)
        check_dataset_size("generator", self._spec.size)
        self._classes = label_classes("generator", params.conditional, self._spec.classes)
        steps = num_resolution_steps(self._spec.size)
        bn = params.batchnorm
        channels = params.width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(params.latent_dim + self._classes, channels, 4, 1, 0, bias=not bn),
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
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        """True when built with ``conditional = true``: called as ``G(z, y)``."""
        return self._classes > 0

    @property
    def classes(self) -> int:
        """How many classes the labels have (0: unconditional)."""
        return self._classes

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

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z``; when conditional, ``y`` gives the classes:
        int64 indices of shape ``(N,)`` or float class weights of shape ``(N, classes)``."""
        z = z.reshape(z.shape[0], -1)
        if self._classes:
            weights = class_weights("generator", y, self._classes, z.shape[0], z.dtype)
            z = torch.cat([z, weights], dim=1)
        else:
            refuse_labels("generator", y)
        return self.main(z.reshape(z.shape[0], -1, 1, 1))
