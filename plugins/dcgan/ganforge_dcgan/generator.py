"""The DCGAN generator: project z to 4x4, then fractional-strided convolutions up to size."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import ImageSpec, param
from ganforge.nn.conditioning import class_weights, refuse_labels
from ganforge.nn.layers import feature_norm, has_feature_norm, norm_validator, spectral_all
from ganforge.nn.network import NetworkGenerator

from .layers import (
    SIZES,
    image_size_validator,
    init_weights,
    num_resolution_steps,
    resolve_norm,
)


class DCGANGenerator(NetworkGenerator):
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

    **Normalization** (``norm``): ``"batch"`` is the paper's network, BatchNorm after every
    layer but the output. The others swap it for a sweep of normalizations
    (``"generator.norm" = ["batch", "spectral", "layer", "none"]``):

    - ``"spectral"``: spectral normalization (Miyato et al., 2018) of every transposed
      convolution, the output layer included, applied after the paper's initialisation (so
      the initial weights are the same); no BatchNorm, and the hidden layers get a bias;
    - ``"layer"``: layer normalization (``GroupNorm`` with one group, affine weight drawn
      from N(1, 0.02) like BatchNorm's) where BatchNorm is: as many parameters as
      ``"batch"``, and nothing that mixes the samples of a batch;
    - ``"none"``: no normalization, the hidden layers get a bias.

    ``batchnorm = false`` is the old spelling of ``norm = "none"``; it goes with the default
    ``norm = "batch"`` only (beside another ``norm`` it is refused). ``effective_norm``
    tells which normalization a network was built with. ``ganforge check`` reports every
    ``norm`` but ``"batch"`` as a deviation from the paper's BatchNorm guideline.
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
        batchnorm: bool = param(True, "BatchNorm in hidden blocks; false: the old spelling "
                                "of norm = 'none' (only beside norm = 'batch')")
        conditional: bool = param(False, "class-conditional: G(z, y) with the label one-hot "
                                  "concatenated to z (as in the paper's MNIST code); needs a "
                                  "dataset with classes")
        norm: str = param("batch", "normalization: 'batch' (paper: BatchNorm in hidden "
                          "blocks), 'spectral' (of every layer, no BatchNorm), 'layer' "
                          "(GroupNorm(1, C) where BatchNorm is) or 'none'",
                          validator=norm_validator)

        def __attrs_post_init__(self) -> None:
            resolve_norm(self.norm, self.batchnorm)  # refuses batchnorm = false beside norm

        @property
        def effective_norm(self) -> str:
            """The normalization built: ``norm``, or ``"none"`` for ``batchnorm = false``."""
            return resolve_norm(self.norm, self.batchnorm)

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.setup_network(params, image_spec, SIZES)  # params, _spec, _classes
        steps = num_resolution_steps(self._spec.size)
        kind = params.effective_norm
        bias = not has_feature_norm(kind)  # a norm's own affine shift makes a bias redundant
        channels = params.width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(params.latent_dim + self._classes, channels, 4, 1, 0, bias=bias),
            feature_norm(kind, channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=bias),
                feature_norm(kind, channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, self._spec.channels, 4, 2, 1, bias=False),
                   nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)
        if kind == "spectral":
            spectral_all(self.main)  # after init_weights: the initial weights are the paper's

    @property
    def effective_norm(self) -> str:
        """The normalization built, one of ``ganforge.nn.layers.NORMS`` (``batchnorm = false``
        reads ``"none"``)."""
        return self.params.effective_norm

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
