"""The ResNet generator of SNGAN (Miyato et al., 2018) and of the projection cGAN (Miyato &
Koyama, 2018), as mimicry implements them."""

from __future__ import annotations

import itertools

import attrs
import torch
from torch import nn

from ganforge import ImageSpec, param
from ganforge.nn.conditioning import checked_labels, refuse_labels
from ganforge.nn.layers import feature_norm, norm_validator, spectral_all
from ganforge.nn.network import NetworkGenerator

from .layers import (
    G_LAYOUTS,
    SIZES,
    UPSAMPLE_MODES,
    GBlock,
    channel_widths,
    image_size_validator,
    xavier,
)


class ResNetGenerator(NetworkGenerator):
    """SNGAN's ResNet G (Miyato et al., 2018, "Spectral Normalization for Generative
    Adversarial Networks"), the G of BigGAN's lineage (Brock et al., 2019).

    A linear layer maps z to a 4x4 map (6x6 at 48 pixels) of ``width`` channels; each
    upsampling residual block (He et al., 2016: BN, ReLU, upsample, conv3x3, BN, ReLU,
    conv3x3, with an upsampled 1x1 convolution as shortcut) doubles the resolution; a
    final BN, ReLU, conv3x3 and tanh give the image. The widths, the blocks and the
    xavier-uniform initialisation (gain 1 for the linear, the shortcuts and the output
    convolution, sqrt(2) in the blocks) are mimicry's (``torch_mimicry/nets/sngan/
    sngan_32.py``, ``sngan_48.py``, ``sngan_64.py``, ``sngan_128.py``,
    ``modules/resblocks.py``), the reference implementation this plugin follows; at the
    CIFAR-10 setting (32 pixels, 3 channels) G has exactly mimicry's 4,276,739 parameters.
    The blocks upsample bilinearly as mimicry does (``upsample = "nearest"``: as in the
    Chainer reference and BigGAN).

    ``norm``: ``batch`` (the papers'), ``layer`` (one-group GroupNorm in place of every
    BatchNorm), ``spectral`` (spectral normalisation of every layer of G and no BatchNorm;
    SAGAN and BigGAN spectrally normalise G too, but keep its BatchNorm) or ``none``.

    **Conditional** (``conditional = true``): called as ``G(z, y)``; every BatchNorm in
    the blocks becomes class-conditional (its gain and bias are rows of a class
    embedding, mimicry's ``ConditionalBatchNorm2d``), as in the projection cGAN's G
    (Miyato & Koyama, 2018, "cGANs with Projection Discriminator"; mimicry's
    ``nets/cgan_pd/cgan_pd_32.py``, ``cgan_pd_128.py``) and BigGAN. The output BatchNorm
    stays unconditional, as in mimicry. ``y`` is int64 class indices ``(N,)`` or float
    class weights ``(N, classes)`` (one-hot rows, or mixtures: their gains and biases are
    ``weights @ embedding``). Conditional BatchNorm needs ``norm = "batch"``.
    """

    @attrs.frozen
    class Params:
        """Shape, prior, normalisation and conditioning of the generator."""

        latent_dim: int = param(128, "size of z (mimicry's nz: 128 at every size)",
                                validator=attrs.validators.gt(0))
        width: int | None = param(None, "channels of the first block (mimicry's ngf); unset: "
                                  "mimicry's for the size (32: 256, 48: 512, 64 and 128: "
                                  "1024)",
                                  validator=attrs.validators.optional(attrs.validators.gt(0)))
        image_size: int | None = param(None, "32, 48, 64 or 128; unset: the dataset's size",
                                       validator=image_size_validator)
        channels: int | None = param(None, "image channels; unset: the dataset's channels",
                                     validator=attrs.validators.optional(
                                         attrs.validators.gt(0)))
        prior: str = param("normal", "latent prior: 'normal' (mimicry) or 'uniform' on "
                           "[-1, 1]", validator=attrs.validators.in_(["normal", "uniform"]))
        norm: str = param("batch", "normalisation: 'batch' (paper), 'layer', 'spectral' "
                          "(spectral norm on every layer instead of BatchNorm) or 'none'",
                          validator=norm_validator)
        upsample: str = param("bilinear", "upsampling in the blocks: 'bilinear' (mimicry) or "
                              "'nearest' (the Chainer reference, BigGAN)",
                              validator=attrs.validators.in_(list(UPSAMPLE_MODES)))
        conditional: bool = param(False, "class-conditional: G(z, y) with class-conditional "
                                  "BatchNorm in the blocks (Miyato & Koyama, 2018); needs "
                                  "norm = 'batch' and a dataset with classes")

        def __attrs_post_init__(self) -> None:
            if self.conditional and self.norm != "batch":
                raise ValueError(f"conditional = true conditions BatchNorm, so it needs "
                                 f"norm = 'batch', not {self.norm!r}")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        size = self.setup_network(params, image_spec, SIZES).size  # params, _spec, _classes
        layout = G_LAYOUTS[size]
        widths = channel_widths("generator", params.width or layout.width, layout.shifts,
                                size)
        self.bottom_width = layout.bottom_width
        # Non-square images: the first map is as many times wider as the images are.
        self.bottom_columns = self._spec.width * layout.bottom_width // size
        self.l1 = nn.Linear(params.latent_dim,
                            layout.bottom_width * self.bottom_columns * widths[0])
        self.blocks = nn.ModuleList(
            GBlock(c_in, c_out, params.norm, self._classes, params.upsample)
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.b_out = feature_norm(params.norm, widths[-1])
        self.activation = nn.ReLU()
        self.c_out = nn.Conv2d(widths[-1], self._spec.channels, 3, 1, padding=1)
        xavier(self.l1, 1.0)
        xavier(self.c_out, 1.0)
        if params.norm == "spectral":
            spectral_all(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z``; when conditional, ``y`` gives the classes:
        int64 indices of shape ``(N,)`` or float class weights of shape ``(N, classes)``."""
        n = z.shape[0]
        labels = None
        if self._classes:
            labels = checked_labels("generator", y, self._classes, n, z.dtype)
        else:
            refuse_labels("generator", y)
        h = self.l1(z.reshape(n, -1))
        h = h.reshape(n, -1, self.bottom_width, self.bottom_columns)
        for block in self.blocks:
            h = block(h, labels)
        h = self.activation(self.b_out(h))
        return torch.tanh(self.c_out(h))
