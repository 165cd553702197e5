"""Shared pieces of the DCGAN networks: size arithmetic, normalisation and initialisation."""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from ganforge import RecipeError
from ganforge.errors import UsageError

#: Image sizes DCGAN supports; the number of blocks follows from the size.
IMAGE_SIZES = (32, 64, 128)


def image_size_validator(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    """Allow ``None`` (take it from the dataset) or one of :data:`IMAGE_SIZES`."""
    if value is not None and value not in IMAGE_SIZES:
        raise ValueError(f"'{attribute.name}' must be one of {list(IMAGE_SIZES)}: {value}")


def check_dataset_size(network: str, size: int) -> None:
    """Refuse an image size given by the dataset that DCGAN cannot build, as a recipe error
    on ``$.dataset.image_size`` (a network's own ``image_size`` param is validated with the
    recipe, so a size that reaches the network unchecked came from the dataset)."""
    if size not in IMAGE_SIZES:
        raise RecipeError.single("$.dataset.image_size",
                                 f"the dcgan {network} builds images of size "
                                 f"{', '.join(map(str, IMAGE_SIZES))} only, not {size}")


def label_classes(network: str, conditional: bool, classes: int) -> int:
    """How many label channels ``network`` concatenates: the dataset's ``classes`` when
    conditional, 0 otherwise (then the network is exactly the unconditional one).

    A conditional network on a dataset without classes is a usage error, told in one line.
    """
    if not conditional:
        return 0
    if classes <= 0:
        raise UsageError(f"{network}: conditional = true needs a dataset with classes; "
                         "dataset gives none")
    return classes


def class_weights(network: str, y: torch.Tensor | None, classes: int, batch: int,
                  dtype: torch.dtype) -> torch.Tensor:
    """The labels of a conditional network as ``(N, classes)`` class weights of ``dtype``.

    ``y`` is either class indices (an integer tensor of shape ``(N,)``: one-hot rows) or
    class weights (a float tensor of shape ``(N, classes)``: one-hot rows, or mixtures of
    them to walk from one class to another), taken as given.
    """
    if y is None:
        raise TypeError(f"{network}: conditional, so it is called with labels as its "
                        "second argument")
    if y.is_floating_point():
        if y.shape != (batch, classes):
            raise ValueError(f"{network}: class weights must have shape ({batch}, {classes}), "
                             f"not {tuple(y.shape)}")
        return y.to(dtype)
    if y.shape != (batch,):
        raise ValueError(f"{network}: class indices must have shape ({batch},), "
                         f"not {tuple(y.shape)}")
    return F.one_hot(y.long(), classes).to(dtype)


def refuse_labels(network: str, y: torch.Tensor | None) -> None:
    """An unconditional network called with labels: say so rather than ignore them."""
    if y is not None:
        raise TypeError(f"{network}: unconditional (conditional = false), so it takes no "
                        "labels")


def num_resolution_steps(image_size: int) -> int:
    """Number of x2 resolution changes between 4x4 and ``image_size`` (3 for 32, 4 for 64)."""
    return int(math.log2(image_size // 4))


#: The refusal of ``batchnorm = false`` beside a ``norm`` other than the default.
OLD_SPELLING = "batchnorm = false is the old spelling of norm = 'none'; set norm alone"


def resolve_norm(norm: str, batchnorm: bool) -> str:
    """The normalization a network builds with, one of :data:`ganforge.layers.NORMS`:
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
