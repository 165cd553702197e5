"""Built-in augmentations of the images D sees (the ``augment`` kind).

``none`` leaves the images alone. ``diffaugment`` is DiffAugment (Zhao et al. 2020) and
``ada`` the adaptive discriminator augmentation of StyleGAN2-ADA (Karras et al. 2020).
Both draw every random number from the step's generator (so resume is exact), run on the
images' device with no host synchronisation, keep the images' dtype, and are
differentiable with respect to the images, so G learns through them.

ADA lives in ``augmentations_ada.py`` and the ops both use in ``augmentations_ops.py``;
their public names are re-exported here.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F

from ..core.interfaces import Augment
from ..core.params import param
from .augmentations_ada import (
    ADA_OPS,
    COLOR_OPS,
    GEOMETRIC_OPS,
    AdaptiveAugment,
)
from .augmentations_ops import (
    _OpList,
    _uniform,
    grid_sample_reflect,
    sampling_grid,
    split_ops,
)

__all__ = [
    "ADA_OPS",
    "COLOR_OPS",
    "DIFFAUGMENT_OPS",
    "GEOMETRIC_OPS",
    "AdaptiveAugment",
    "DiffAugment",
    "NoAugment",
    "grid_sample_reflect",
    "sampling_grid",
    "split_ops",
]


class NoAugment(Augment):
    """No augmentation (the default): D sees the images as they are."""

    changes_images = False

    @attrs.frozen
    class Params:
        """No tunable values."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images


# -- DiffAugment ----------------------------------------------------------------------------

DIFFAUGMENT_OPS: tuple[str, ...] = ("color", "translation", "cutout")


class DiffAugment(Augment):
    """DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"): the same random, differentiable transforms on every image D sees, real and
    fake, applied to every sample (no probability).

    A port of the authors' ``DiffAugment_pytorch.py``, op for op, for images in [-1, 1]:

    - ``color``: brightness ``x + U(-0.5, 0.5)``, then saturation ``(x - m_c) U(0, 2) +
      m_c`` around each pixel's channel mean ``m_c``, then contrast ``(x - m) U(0.5, 1.5)
      + m`` around the image's mean ``m`` (one draw per image each);
    - ``translation``: an integer shift of up to ``round(translation_ratio * size)``
      pixels along each axis, zero padded;
    - ``cutout``: a ``round(cutout_ratio * size)`` square of zeros centred at a random
      pixel (cut off at the border).

    The ops run in the order the policy names them. The random numbers are drawn in
    float32 (the reference draws them in the images' dtype).
    """

    @attrs.frozen
    class Params:
        """DiffAugment's policy and the sizes of its translation and cutout."""

        policy: str = param("color,translation,cutout",
                            "comma-separated ops, applied in this order: color, "
                            "translation, cutout", validator=_OpList(DIFFAUGMENT_OPS))
        translation_ratio: float = param(
            0.125, "largest shift, as a fraction of the image size",
            validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
        cutout_ratio: float = param(
            0.5, "side of the cutout square, as a fraction of the image size",
            validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.ops: tuple[str, ...] = tuple(split_ops(params.policy))

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images
        for op in self.ops:
            if op == "color":
                x = self.color(x, generator)
            elif op == "translation":
                x = self.translation(x, generator)
            else:
                x = self.cutout(x, generator)
        return x

    @staticmethod
    def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random brightness, saturation and contrast (three draws per image, in that
        order)."""
        n, device = x.shape[0], x.device
        x = x + (_uniform(n, generator, device, 1, 1, 1) - 0.5).to(x.dtype)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(n, generator, device, 1, 1, 1) * 2).to(x.dtype) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (_uniform(n, generator, device, 1, 1, 1) + 0.5).to(x.dtype) + mean

    def translation(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Shift each image by whole pixels (rows first, then columns, drawn uniformly in
        ``[-shift, shift]``), filling with zeros."""
        n, _, h, w = x.shape
        device = x.device
        ratio = self.params.translation_ratio
        shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
        dy = torch.randint(-shift_h, shift_h + 1, (n, 1, 1), generator=generator, device=device)
        dx = torch.randint(-shift_w, shift_w + 1, (n, 1, 1), generator=generator, device=device)
        # Output pixel (i, j) reads input (i + dy, j + dx); out of range reads the zero pad.
        rows = (torch.arange(h, device=device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
        batch = torch.arange(n, device=device).view(n, 1, 1)
        padded = F.pad(x, [1, 1, 1, 1])
        return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()

    def cutout(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Zero a square of ``cutout_ratio`` times the size in each image, centred at a
        random pixel and cut off where it leaves the image."""
        n, _, h, w = x.shape
        device = x.device
        ratio = self.params.cutout_ratio
        size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
        # The reference's centre range, [0, size] for an even square and [0, size) for odd.
        cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=generator,
                           device=device)
        cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=generator,
                           device=device)
        top, left = cy - size_h // 2, cx - size_w // 2
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        inside = ((rows >= top) & (rows < top + size_h)) & ((cols >= left) & (cols < left + size_w))
        return x * (~inside).unsqueeze(1).to(x.dtype)
