"""The ResNet discriminator of SNGAN (Miyato et al., 2018) with the projection of Miyato &
Koyama (2018), as mimicry implements them."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ganforge import ImageSpec, param
from ganforge.nn.conditioning import checked_labels, refuse_labels
from ganforge.nn.layers import norm_validator, spectral_all
from ganforge.nn.network import NetworkDiscriminator

from .layers import (
    D_LAYOUTS,
    SIZES,
    DBlock,
    DBlockOptimized,
    channel_widths,
    embed,
    image_size_validator,
    xavier,
)


class ResNetDiscriminator(NetworkDiscriminator):
    """SNGAN's ResNet D (Miyato et al., 2018, "Spectral Normalization for Generative
    Adversarial Networks"), the D of BigGAN's lineage (Brock et al., 2019).

    An "optimized" first residual block (conv3x3, ReLU, conv3x3, average-pool, with a
    pooled 1x1 convolution as shortcut) is followed by pre-activation residual blocks
    (He et al., 2016: ReLU, conv3x3, ReLU, conv3x3, average-pool where the block
    downsamples, with a 1x1 convolution as shortcut where the shape changes); then ReLU,
    global sum pooling and a linear layer to one raw logit, shape ``(N,)``. The widths,
    blocks and xavier-uniform initialisation are mimicry's (``torch_mimicry/nets/sngan/
    sngan_32.py``, ``sngan_48.py``, ``sngan_64.py``, ``sngan_128.py``,
    ``modules/resblocks.py``), the reference implementation this plugin follows; at the
    CIFAR-10 setting (32 pixels, 3 channels) D has exactly mimicry's 1,053,825
    parameters.

    ``norm``: ``spectral`` (the default, the paper's: spectral normalisation of every
    convolution, of the linear layer and of the projection embedding, no other
    normalisation), ``batch`` or ``layer`` (BatchNorm / one-group GroupNorm before every
    ReLU inside the blocks, as Kurach et al. (2019) compare them; no spectral norm) or
    ``none``.

    ``relu_shortcut``: the shortcut of the later blocks reads ReLU(x) instead of x, which
    is what mimicry's blocks compute (their first ReLU runs in place before the shortcut
    reads x); set it to reproduce mimicry's D exactly. The default is the papers' and the
    Chainer reference's block.

    **Conditional** (``conditional = true``): the projection discriminator of Miyato &
    Koyama (2018), "cGANs with Projection Discriminator" (mimicry's
    ``nets/cgan_pd/cgan_pd_32.py``, ``cgan_pd_128.py``): called as ``D(images, y)``, the
    logit gains ``sum(embed(y) * h)``, the inner product of a learned class embedding
    (spectrally normalised under ``norm = "spectral"``) with the pooled features ``h``.
    ``y`` is int64 class indices ``(N,)`` or float class weights ``(N, classes)`` (then
    ``weights @ embedding``).
    """

    @attrs.frozen
    class Params:
        """Shape, normalisation and conditioning of the discriminator."""

        width: int | None = param(None, "channels of the last blocks (mimicry's ndf); unset: "
                                  "mimicry's for the size (32: 128, 48, 64 and 128: 1024)",
                                  validator=attrs.validators.optional(attrs.validators.gt(0)))
        image_size: int | None = param(None, "32, 48, 64 or 128; unset: the dataset's size",
                                       validator=image_size_validator)
        channels: int | None = param(None, "image channels; unset: the dataset's channels",
                                     validator=attrs.validators.optional(
                                         attrs.validators.gt(0)))
        norm: str = param("spectral", "normalisation: 'spectral' (paper: spectral norm on "
                          "every layer), 'batch', 'layer' (inside the blocks, no spectral "
                          "norm) or 'none'", validator=norm_validator)
        relu_shortcut: bool = param(False, "later blocks' shortcut reads ReLU(x), as "
                                    "mimicry's in-place ReLU makes it (true: mimicry's exact "
                                    "D; false: the papers' block)")
        conditional: bool = param(False, "class-conditional: D(images, y), the projection "
                                  "discriminator (Miyato & Koyama, 2018); needs a dataset "
                                  "with classes")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        spec = self.setup_network(params, image_spec, SIZES)  # params, image_spec, _classes
        layout = D_LAYOUTS[spec.size]
        shifts = (layout.first, *(shift for shift, _ in layout.blocks))
        widths = channel_widths("discriminator", params.width or layout.width, shifts,
                                spec.size)
        blocks: list[nn.Module] = [DBlockOptimized(spec.channels, widths[0], params.norm)]
        for c_in, c_out, (_, down) in zip(widths[:-1], widths[1:], layout.blocks, strict=True):
            blocks.append(DBlock(c_in, c_out, params.norm, down, params.relu_shortcut))
        self.blocks = nn.ModuleList(blocks)
        self.activation = nn.ReLU()
        self.l_out = nn.Linear(widths[-1], 1)
        xavier(self.l_out, 1.0)
        self.l_y: nn.Embedding | None = None
        if self._classes:
            self.l_y = nn.Embedding(self._classes, widths[-1])
            xavier(self.l_y, 1.0)
        if params.norm == "spectral":
            spectral_all(self)

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """One raw logit per image; when conditional, ``y`` gives the classes (int64
        indices of shape ``(N,)``, or float class weights of shape ``(N, classes)``)."""
        labels = None
        if self.l_y is not None:
            labels = checked_labels("discriminator", y, self._classes, images.shape[0],
                                  images.dtype)
        else:
            refuse_labels("discriminator", y)
        h = images
        for block in self.blocks:
            h = block(h)
        h = self.activation(h).sum(dim=(2, 3))
        logits = self.l_out(h).flatten()
        if self.l_y is not None and labels is not None:
            logits = logits + (embed(self.l_y, labels) * h).sum(dim=1)
        return logits
