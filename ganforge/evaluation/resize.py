"""Resizing and normalising images for the Inception network exactly as the FID codes do.

Every mode takes uint8-valued images (as saved images are) in NCHW. Two steps, per mode:

- :func:`resize_for_inception` gives ``size`` x ``size`` floats still in [0, 255];
- :func:`normalize_for_inception` maps them to the network's input range [-1, 1] the way
  the tool the mode copies does it.

:func:`prepare_for_inception` does both (and repeats grey images to RGB); it is what the
extractor calls, and for ``pytorch_fid`` it follows that tool's float32 operations step by
step (scale to [0, 1] *before* resizing), so it is the one to use for comparable numbers.

The modes (one line each in :data:`RESIZE_PROTOCOLS`):

- ``antialias``: ``F.interpolate(bilinear, align_corners=False, antialias=True)``, the
  default of torchmetrics' FID (so ganforge's FID equals torchmetrics' on the same images);
  normalised with ``(x - 128) / 128``.
- ``tf1``: TensorFlow 1.x bilinear resize (source coordinate ``dst * in / out``, no
  half-pixel offset, no antialiasing), as torch-fidelity, the original TF FID code and
  clean-fid's ``legacy_tensorflow`` mode do; normalised with ``(x - 128) / 128``.
- ``clean``: clean-fid's default ``"clean"`` mode (``make_resizer("PIL", False, "bicubic",
  (299, 299))``): each channel as a float32 PIL image (mode ``F``) resized with PIL's
  antialiased BICUBIC filter (``a = -0.5``, support widened by the scale factor when
  shrinking), then clipped to [0, 255], *not* quantised; normalised with
  ``(x - 128) / 128`` as clean-fid's ``InceptionV3W`` does (the network then does not resize
  again). CPU tensors go through Pillow itself; on other devices a torch reimplementation
  of Pillow's float32 path runs (see :func:`pil_bicubic`), equal to Pillow to the last bit.
- ``pytorch_fid``: pytorch-fid (``torchvision ToTensor`` -> [0, 1], ``F.interpolate(
  bilinear, align_corners=False)`` without antialiasing inside its ``InceptionV3``, then
  ``2 * x - 1``), i.e. normalised with ``x / 127.5 - 1``, **not** ``(x - 128) / 128``.
  (clean-fid's ``legacy_pytorch`` mode resizes the same way but on [0, 255] values.)

An image that already has the target size is passed through unchanged by every mode, as
each of those tools does (PIL returns a copy, bilinear to the same size is the identity).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE_MODES = ("antialias", "tf1", "clean", "pytorch_fid")

#: One line per mode naming the tool whose numbers it reproduces; recorded in every score's
#: protocol.
RESIZE_PROTOCOLS: dict[str, str] = {
    "antialias": "uint8, antialiased bilinear to 299x299, (x-128)/128 (torchmetrics)",
    "tf1": "uint8, TF1 bilinear to 299x299, (x-128)/128 "
           "(torch-fidelity, original TF FID, clean-fid legacy_tensorflow)",
    "clean": "uint8, PIL float32 bicubic to 299x299 clipped to [0,255], (x-128)/128 "
             "(clean-fid mode='clean')",
    "pytorch_fid": "uint8/255, bilinear (no antialias) to 299x299, 2x-1 (pytorch-fid)",
}

#: Modes whose network input is ``(x - 128) / 128``; the others' is ``x / 127.5 - 1``.
_CENTRED_AT_128 = frozenset({"antialias", "tf1", "clean"})

#: Images resized per chunk in ``clean`` mode (bounds the float64 temporaries).
_CLEAN_CHUNK = 32


def _check_mode(mode: str) -> None:
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; use one of {RESIZE_MODES}")


# --- tf1 -------------------------------------------------------------------------------

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


# --- clean (PIL bicubic on float32 images) ---------------------------------------------

def _pil_bicubic(x: float) -> float:
    # Pillow's bicubic_filter (a = -0.5), with its operation order.
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@functools.lru_cache(maxsize=64)
def _pil_bicubic_coefficients(in_size: int, out_size: int
                              ) -> tuple[tuple[tuple[int, ...], ...],
                                         tuple[tuple[float, ...], ...]]:
    """Pillow's ``precompute_coeffs`` for BICUBIC over the whole image: per output pixel,
    the ``ksize`` source indices and normalised weights (padded with weight 0)."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    indices: list[tuple[int, ...]] = []
    weights: list[tuple[float, ...]] = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_pil_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        if ww != 0.0:
            k = [w / ww for w in k]
        pad = ksize - xmax
        indices.append(tuple(range(xmin, xmin + xmax)) + (xmin,) * pad)
        weights.append(tuple(k) + (0.0,) * pad)
    return tuple(indices), tuple(weights)


def _pil_bicubic_axis(x: torch.Tensor, out: int, dim: int) -> torch.Tensor:
    """One pass of Pillow's 32-bit float resample along ``dim``: a float64 sum, in source
    order, of float32 pixels times float64 weights, stored as float32."""
    index_rows, weight_rows = _pil_bicubic_coefficients(x.shape[dim], out)
    index = torch.tensor(index_rows, dtype=torch.long, device=x.device)
    weight = torch.tensor(weight_rows, dtype=torch.float64, device=x.device)
    shape = [1] * x.dim()
    shape[dim] = out
    source = x.to(torch.float64)
    total = source.index_select(dim, index[:, 0]).mul_(weight[:, 0].view(shape))
    for tap in range(1, index.shape[1]):
        # a separate multiply and add (no fused multiply-add), as Pillow's C loop does
        total.add_(source.index_select(dim, index[:, tap]).mul_(weight[:, tap].view(shape)))
    return total.to(torch.float32)


def _pil_bicubic_torch(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[0] > _CLEAN_CHUNK:
        return torch.cat([_pil_bicubic_torch(part, size) for part in x.split(_CLEAN_CHUNK)])
    height, width = x.shape[2], x.shape[3]
    # Pillow 13's order (Pillow <= 12 always went horizontal first)
    vertical_first = height - size > 0 and height - size > (width - size) * 2
    for dim in ((2, 3) if vertical_first else (3, 2)):
        if x.shape[dim] != size:
            x = _pil_bicubic_axis(x, size, dim)
    return x.clamp(0.0, 255.0)


def _pil_bicubic_pillow(x: torch.Tensor, size: int) -> torch.Tensor:
    planes = x.detach().cpu().numpy()
    out = np.empty((*planes.shape[:2], size, size), dtype=np.float32)
    for n, c in np.ndindex(*planes.shape[:2]):
        # clean-fid: Image.fromarray(plane, mode="F") (the mode a float32 array gets)
        image = Image.fromarray(np.ascontiguousarray(planes[n, c]))
        out[n, c] = np.asarray(image.resize((size, size), resample=Image.Resampling.BICUBIC))
    return torch.from_numpy(out.clip(0, 255)).to(x.device)


def pil_bicubic(x: torch.Tensor, size: int, backend: str = "auto") -> torch.Tensor:
    """clean-fid's ``clean`` resize of NCHW floats in [0, 255]: per channel, PIL
    ``Image.fromarray(c, mode="F").resize((size, size), BICUBIC)``, then ``clip(0, 255)``;
    float32 out, on ``x``'s device.

    ``backend``: ``"pillow"`` calls Pillow itself (clean-fid's code, fastest on the CPU);
    ``"torch"`` is a reimplementation that runs on any device: Pillow's coefficients, a
    float64 sum in Pillow's order per output pixel, a float32 image between the two passes,
    and Pillow 13's pass order (vertical first when the height shrinks by more than twice
    as many pixels as the width does; Pillow <= 12 always went horizontal first, which
    never matters for square images and otherwise moves a value by one float32 rounding
    step at most). It equals Pillow to the last bit on x86-64. ``"auto"``: Pillow for CPU
    tensors, torch for the others.
    """
    x = x.to(torch.float32)
    if backend == "auto":
        backend = "pillow" if x.device.type == "cpu" else "torch"
    if backend == "pillow":
        return _pil_bicubic_pillow(x, size)
    if backend == "torch":
        return _pil_bicubic_torch(x, size)
    raise ValueError(f"unknown backend {backend!r}; use 'auto', 'pillow' or 'torch'")


# --- the public steps ------------------------------------------------------------------

def resize_for_inception(images_uint8: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """uint8-valued NCHW images -> float NCHW of ``size`` x ``size``, values in [0, 255]."""
    _check_mode(mode)
    x = images_uint8.float()
    if x.shape[-2:] == (size, size):
        return x
    if mode == "antialias":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
    if mode == "tf1":
        return tf1_bilinear(x, size)
    if mode == "clean":
        return pil_bicubic(x, size)
    # pytorch_fid: the same bilinear as pytorch-fid, on [0, 255] instead of [0, 1] values
    # (equal up to float32 rounding; prepare_for_inception does pytorch-fid's exact steps)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def normalize_for_inception(resized: torch.Tensor, mode: str) -> torch.Tensor:
    """Resized [0, 255] floats -> the network input in [-1, 1], as the mode's tool does it:
    ``(x - 128) / 128`` for ``antialias``, ``tf1`` and ``clean`` (TF graph, torch-fidelity,
    torchmetrics, clean-fid); ``x / 255 * 2 - 1`` for ``pytorch_fid``."""
    _check_mode(mode)
    if mode in _CENTRED_AT_128:
        return resized.sub(128.0).div(128.0)
    return resized.div(255.0).mul(2.0).sub(1.0)


def prepare_for_inception(images_uint8: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """uint8-valued NCHW images (1 or 3 channels) -> the Inception network's input: grey
    repeated to RGB, resized to ``size`` x ``size`` and normalised as ``mode``'s tool does.

    ``antialias``, ``tf1``, ``clean``: ``(resize(x) - 128) / 128``.
    ``pytorch_fid``: ``2 * bilinear(x / 255) - 1`` in float32, step for step as pytorch-fid
    (``x / 255`` rounded as torchvision's ``ToTensor`` does on the CPU, on any device).
    """
    _check_mode(mode)
    x = images_uint8
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if mode in _CENTRED_AT_128:
        return normalize_for_inception(resize_for_inception(x, size, mode), mode)
    # float64 division rounded to float32 is the correctly rounded float32 k / 255 for
    # every k in 0..255, whichever way the device divides by a scalar
    unit = x.to(torch.float64).div(255.0).to(torch.float32)
    if unit.shape[-2:] != (size, size):
        unit = F.interpolate(unit, size=(size, size), mode="bilinear", align_corners=False)
    return 2 * unit - 1
