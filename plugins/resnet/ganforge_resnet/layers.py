"""The building blocks of the ResNet networks: the layout of each resolution, the residual
blocks, conditional BatchNorm and the checks shared by G and D.

The blocks follow mimicry (Lee & Town, 2020; github.com/kwotsin/mimicry,
``torch_mimicry/modules/resblocks.py`` and ``modules/layers.py``), itself a port of the
Chainer reference of Miyato et al. (2018) (github.com/pfnet-research/sngan_projection):
pre-activation residual blocks (He et al., 2016, "Identity Mappings in Deep Residual
Networks") with a learnable 1x1 shortcut wherever the block changes the shape.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from ganforge import RecipeError
from ganforge.nn.layers import feature_norm
from ganforge.nn.network import ImageSizes

#: Image sizes the networks are built for (mimicry's SNGAN32, 48, 64 and 128).
IMAGE_SIZES = (32, 48, 64, 128)

#: Upsampling modes of G's blocks: mimicry's bilinear, or the nearest neighbour of the
#: Chainer reference (Miyato et al., 2018) and of BigGAN (Brock et al., 2019).
UPSAMPLE_MODES = ("bilinear", "nearest")


@attrs.frozen
class GeneratorLayout:
    """G at one resolution: the side of the first feature map, mimicry's ``ngf``, and the
    channels of the first map and of each upsampling block's output as right shifts of
    the width (``width >> shift``)."""

    bottom_width: int
    width: int
    shifts: tuple[int, ...]


@attrs.frozen
class DiscriminatorLayout:
    """D at one resolution: mimicry's ``ndf``, the channels of the first ("optimized")
    block as a right shift of the width, and each later block's (shift, downsample)."""

    width: int
    first: int
    blocks: tuple[tuple[int, bool], ...]


#: mimicry's SNGANGenerator32/48/64/128 (``nets/sngan/sngan_<size>.py``): nz = 128 at
#: every size, ngf 256 / 512 / 1024 / 1024, a 4x4 (6x6 at 48) first map, one upsampling
#: block per doubling.
G_LAYOUTS: dict[int, GeneratorLayout] = {
    32: GeneratorLayout(4, 256, (0, 0, 0, 0)),
    48: GeneratorLayout(6, 512, (0, 1, 2, 3)),
    64: GeneratorLayout(4, 1024, (0, 1, 2, 3, 4)),
    128: GeneratorLayout(4, 1024, (0, 0, 1, 2, 3, 4)),
}

#: mimicry's SNGANDiscriminator32/48/64/128: ndf 128 / 1024 / 1024 / 1024; at 32 pixels
#: every block has ``ndf`` channels and only the first two downsample.
D_LAYOUTS: dict[int, DiscriminatorLayout] = {
    32: DiscriminatorLayout(128, 0, ((0, True), (0, False), (0, False))),
    48: DiscriminatorLayout(1024, 4, ((3, True), (2, True), (1, True), (0, False))),
    64: DiscriminatorLayout(1024, 4, ((3, True), (2, True), (1, True), (0, True))),
    128: DiscriminatorLayout(1024, 4, ((3, True), (2, True), (1, True), (0, True),
                                       (0, False))),
}


def width_step(height: int) -> int:
    """What the width of non-square images of ``height`` must be a multiple of: G's
    upsampling factor (its first map is ``bottom_width`` high and ``width / factor``
    wide) and D's downsampling factor (its last map has a whole number of columns)."""
    g = G_LAYOUTS[height]
    d = D_LAYOUTS[height]
    downsamplings = 1 + sum(down for _, down in d.blocks)  # the first block downsamples
    return math.lcm(height // g.bottom_width, 2 ** downsamplings)


#: The sizes and their checks (ganforge's, shared with any network plugin). Non-square
#: images are built at every height, for widths that are multiples of :func:`width_step`.
SIZES = ImageSizes("resnet", IMAGE_SIZES, width_step)
#: attrs validator of ``image_size``: ``None`` (take it from the dataset) or a size above.
image_size_validator = SIZES.validator
#: Refuse a dataset's size the networks cannot build (a recipe error on
#: ``$.dataset.image_size``).
check_dataset_size = SIZES.check_dataset_size


def channel_widths(network: str, width: int, shifts: tuple[int, ...], size: int) -> list[int]:
    """``width >> shift`` for each shift; a width so small that a block would have no
    channels is a recipe error on ``$.<network>.width``."""
    minimum = 1 << max(shifts)
    if width < minimum:
        raise RecipeError.single(f"$.{network}.width",
                                 f"the resnet {network} at {size} pixels halves its width "
                                 f"{max(shifts)} times, so it needs width >= {minimum}, "
                                 f"not {width}")
    return [width >> shift for shift in shifts]


def embed(embedding: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Rows of ``embedding`` for class indices ``y``, or ``y @ embedding.weight`` for class
    weights (the weight as the layer sees it: spectrally normalised when it is), as
    :func:`ganforge.nn.conditioning.checked_labels` returns them; for a one-hot row both are the
    same row."""
    if y.is_floating_point():
        return y @ embedding.weight
    return embedding(y)


def xavier(module: nn.Module, gain: float) -> None:
    """mimicry's initialisation of a weight layer: ``xavier_uniform_`` with ``gain``; the
    bias keeps torch's default initialisation, as in mimicry."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    nn.init.xavier_uniform_(weight, gain)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias depend on the class (de Vries et al., 2017; Dumoulin
    et al., 2017), as in the conditional G of Miyato & Koyama (2018) and BigGAN.

    mimicry's ``ConditionalBatchNorm2d`` (``modules/layers.py``): a BatchNorm without
    affine parameters and an embedding of ``classes`` rows of ``2 * features`` values (the
    gains, initialised N(1, 0.02), then the biases, initialised 0). Called with class
    indices it looks the rows up; with class weights ``(N, classes)`` it uses
    ``weights @ embedding``, so a mixture of classes mixes their gains and biases.
    """

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.features = features
        self.bn = nn.BatchNorm2d(features, affine=False)
        self.embed = nn.Embedding(classes, 2 * features)
        with torch.no_grad():
            self.embed.weight[:, :features].normal_(1.0, 0.02)
            self.embed.weight[:, features:].zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain, bias = embed(self.embed, y).chunk(2, dim=1)
        shape = (-1, self.features, 1, 1)
        return gain.reshape(shape) * self.bn(x) + bias.reshape(shape)


def _normalise(norm: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    if isinstance(norm, ConditionalBatchNorm2d):
        assert y is not None
        return norm(x, y)
    return norm(x)


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, 1, padding=1)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, 1, padding=0)


class GBlock(nn.Module):
    """G's upsampling residual block (mimicry's ``GBlock`` with ``upsample=True``).

    Residual: norm, ReLU, upsample x2, conv3x3, norm, ReLU, conv3x3. Shortcut: upsample x2,
    conv1x1. ``norm`` is a :data:`ganforge.nn.layers.NORMS` key (``spectral`` and ``none``
    put no layer there); with ``classes > 0`` both norms are
    :class:`ConditionalBatchNorm2d`. The 3x3 convolutions are initialised xavier-uniform
    with gain sqrt(2), the shortcut with gain 1, as in mimicry.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, classes: int = 0,
                 upsample: str = "bilinear") -> None:
        super().__init__()
        self.upsample = upsample
        self.b1 = (ConditionalBatchNorm2d(in_channels, classes) if classes
                   else feature_norm(norm, in_channels))
        self.c1 = _conv3x3(in_channels, out_channels)
        self.b2 = (ConditionalBatchNorm2d(out_channels, classes) if classes
                   else feature_norm(norm, out_channels))
        self.c2 = _conv3x3(out_channels, out_channels)
        self.c_sc = _conv1x1(in_channels, out_channels)
        self.activation = nn.ReLU()
        xavier(self.c1, math.sqrt(2.0))
        xavier(self.c2, math.sqrt(2.0))
        xavier(self.c_sc, 1.0)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.activation(_normalise(self.b1, x, y))
        h = self.c1(self._up(h))
        h = self.activation(_normalise(self.b2, h, y))
        h = self.c2(h)
        return h + self.c_sc(self._up(x))


class DBlockOptimized(nn.Module):
    """D's first block (mimicry's ``DBlockOptimized``, the "optimized" block of the Chainer
    reference): no activation before the first convolution, which sees the image.

    Residual: conv3x3, norm, ReLU, conv3x3, average-pool x2. Shortcut: average-pool x2,
    conv1x1.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.c1 = _conv3x3(in_channels, out_channels)
        self.b1 = feature_norm(norm, out_channels)
        self.c2 = _conv3x3(out_channels, out_channels)
        self.c_sc = _conv1x1(in_channels, out_channels)
        self.activation = nn.ReLU()
        xavier(self.c1, math.sqrt(2.0))
        xavier(self.c2, math.sqrt(2.0))
        xavier(self.c_sc, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(self.activation(self.b1(self.c1(x))))
        return F.avg_pool2d(h, 2) + self.c_sc(F.avg_pool2d(x, 2))


class DBlock(nn.Module):
    """D's later blocks (mimicry's ``DBlock``), hidden channels = input channels.

    Residual: norm, ReLU, conv3x3, norm, ReLU, conv3x3, then average-pool x2 when
    ``downsample``. Shortcut: conv1x1 (then average-pool x2) when the block downsamples or
    changes the channels, else the identity.

    ``relu_shortcut``: the shortcut reads ReLU(x) instead of x. mimicry's block does, by
    accident: its first ReLU is in place (``nn.ReLU(True)``) and runs before the shortcut
    reads ``x``. The papers and the Chainer reference use ``x``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, downsample: bool,
                 relu_shortcut: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.relu_shortcut = relu_shortcut
        self.b1 = feature_norm(norm, in_channels)
        self.c1 = _conv3x3(in_channels, in_channels)
        self.b2 = feature_norm(norm, in_channels)
        self.c2 = _conv3x3(in_channels, out_channels)
        self.activation = nn.ReLU()
        xavier(self.c1, math.sqrt(2.0))
        xavier(self.c2, math.sqrt(2.0))
        self.c_sc: nn.Module | None = None
        if downsample or in_channels != out_channels:
            self.c_sc = _conv1x1(in_channels, out_channels)
            xavier(self.c_sc, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(self.activation(self.b1(x)))
        h = self.c2(self.activation(self.b2(h)))
        shortcut = self.activation(x) if self.relu_shortcut else x
        if self.c_sc is not None:
            shortcut = self.c_sc(shortcut)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            shortcut = F.avg_pool2d(shortcut, 2)
        return h + shortcut
