"""The DCGAN discriminator: strided convolutions down to 4x4, then one logit per image."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import Discriminator, ImageSpec, param, resolve_image_spec

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


class DCGANDiscriminator(Discriminator):
    """DCGAN's D: LeakyReLU in every block, BatchNorm except on the input block.

    Returns raw logits of shape ``(N,)``; the sigmoid belongs to the loss.

    **Conditional** (``conditional = true``): called as ``D(images, y)``, the label is
    concatenated to the image as ``classes`` constant feature maps (the one-hot vector
    broadcast over every pixel) before the first convolution, whose input channels become
    ``channels + classes``; the rest of the network is unchanged. This is how the paper's
    authors conditioned their MNIST model (Radford et al.'s dcgan_code,
    ``mnist/train_cond_dcgan.py``: ``X = conv_cond_concat(X, yb)`` in ``discrim``, with
    ``conv_cond_concat`` from ``lib/ops.py``). They also concatenated the label again
    before every later layer; this discriminator does it at the input only. The extra input
    weights are drawn from N(0, 0.02) like the rest, and at ``conditional = false`` the
    network (its modules, parameters and state_dict) is exactly the unconditional one.
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
        conditional: bool = param(False, "class-conditional: D(images, y) with the label "
                                  "as one-hot constant maps concatenated to the image (as in "
                                  "the paper's MNIST code); needs a dataset with classes")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        spec = resolve_image_spec("discriminator", params.image_size, params.channels,
                                  image_spec)
        check_dataset_size("discriminator", spec.size)
        self.image_spec = spec
        self._classes = label_classes("discriminator", params.conditional, spec.classes)
        steps = num_resolution_steps(spec.size)
        bn, slope = params.batchnorm, params.leaky_slope
        channels = params.width
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels + self._classes, channels, 4, 2, 1, bias=False),
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

    @property
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        """True when built with ``conditional = true``: called as ``D(images, y)``."""
        return self._classes > 0

    @property
    def classes(self) -> int:
        """How many classes the labels have (0: unconditional)."""
        return self._classes

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """One raw logit per image; when conditional, ``y`` gives the classes (int64
        indices of shape ``(N,)``, or float class weights of shape ``(N, classes)``)."""
        if self._classes:
            n, _, height, width = images.shape
            weights = class_weights("discriminator", y, self._classes, n, images.dtype)
            maps = weights[:, :, None, None].expand(n, self._classes, height, width)
            images = torch.cat([images, maps], dim=1)
        else:
            refuse_labels("discriminator", y)
        return self.main(images).flatten()
