"""Shared pieces of the DCGAN networks: size arithmetic, normalisation and initialisation
(the label helpers are ganforge's, in :mod:`ganforge.nn.conditioning`)."""

from __future__ import annotations

import math

from torch import nn

from ganforge.nn.network import ImageSizes

#: Image sizes DCGAN supports; the number of blocks follows from the size.
IMAGE_SIZES = (32, 64, 128)


#: The sizes and their checks (ganforge's, shared with any network plugin).
SIZES = ImageSizes("dcgan", IMAGE_SIZES)
#: attrs validator of ``image_size``: ``None`` (take it from the dataset) or a size above.
image_size_validator = SIZES.validator
#: Refuse a dataset's size DCGAN cannot build (a recipe error on ``$.dataset.image_size``).
check_dataset_size = SIZES.check_dataset_size


def num_resolution_steps(image_size: int) -> int:
    """Number of x2 resolution changes between 4x4 and ``image_size`` (3 for 32, 4 for 64)."""
    return int(math.log2(image_size // 4))


#: The refusal of ``batchnorm = false`` beside a ``norm`` other than the default.
OLD_SPELLING = "batchnorm = false is the old spelling of norm = 'none'; set norm alone"


def resolve_norm(norm: str, batchnorm: bool) -> str:
    """The normalization a network builds with, one of :data:`ganforge.nn.layers.NORMS`:
    ``norm``, except that ``batchnorm = false`` beside the default ``norm = "batch"`` is the
    old spelling of ``"none"``. ``batchnorm = false`` beside any other ``norm`` is a
    ``ValueError``."""
    if batchnorm:
        return norm
    if norm == "batch":
        return "none"
    raise ValueError(f"{OLD_SPELLING} (norm = {norm!r} was set too)")


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0.

    The layer norm (``GroupNorm``) that ``norm = "layer"`` puts where BatchNorm is gets the
    same affine initialisation as BatchNorm. Call it before spectral normalization wraps the
    convolutions, so their initial weights are these."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
