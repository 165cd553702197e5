"""Resizing images for the Inception network exactly as the reference FID codes do.

Both modes take uint8-valued images (as saved images are) and give 299x299 floats still in
[0, 255]; the extractor then normalises with ``(x - 128) / 128`` like the original
TensorFlow graph and torch-fidelity.

- ``antialias``: ``F.interpolate(bilinear, align_corners=False, antialias=True)``, the
  default of torchmetrics' FID (so ganforge's FID equals torchmetrics' on the same images);
- ``tf1``: TensorFlow 1.x bilinear resize (source coordinate ``dst * in / out``, no
  half-pixel offset, no antialiasing), as torch-fidelity and the original TF FID code do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RESIZE_MODES = ("antialias", "tf1")


def _tf1_axis(x: torch.Tensor, out: int, dim: int) -> torch.Tensor:
    size = x.shape[dim]
    scale = size / out
    src = torch.arange(out, dtype=torch.float64, device=x.device) * scale
    lo = src.floor().clamp_(max=size - 1)
    weight = (src - lo).to(x.dtype)
    lo_index = lo.long()
    hi_index = (lo_index + 1).clamp_(max=size - 1)
    shape = [1] * x.dim()
    shape[dim] = out
    weight = weight.view(shape)
    low = x.index_select(dim, lo_index)
    high = x.index_select(dim, hi_index)
    return low + (high - low) * weight


def tf1_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of NCHW floats."""
    return _tf1_axis(_tf1_axis(x, size, 2), size, 3)


def resize_for_inception(images_uint8: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """uint8-valued NCHW images -> float NCHW of ``size`` x ``size``, values in [0, 255]."""
    x = images_uint8.float()
    if x.shape[-2:] == (size, size):
        return x
    if mode == "antialias":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
    if mode == "tf1":
        return tf1_bilinear(x, size)
    raise ValueError(f"unknown resize mode {mode!r}; use one of {RESIZE_MODES}")
