"""Decoding one encoded image (file or bytes) into a uint8 tensor, whatever its mode.

Every odd case a scraped dataset holds is either converted correctly or refused with a
:class:`BadImage` error naming the image:

- grey (``L``, ``1``), palette (``P``), CMYK, YCbCr: converted by Pillow;
- alpha (``RGBA``, ``LA``, ``PA``, palette with transparency): composited onto white, so
  transparent pixels do not turn into whatever colour happened to be stored under them;
- 16-bit and 32-bit integer (``I;16``, ``I``) and float (``F``) images: rescaled to 8 bits
  (Pillow's own conversion clips them to white);
- EXIF orientation is applied;
- truncated, zero-byte and undecodable data, and decompression bombs (more than
  :data:`MAX_PIXELS` pixels, checked from the header before decoding), are refused;
- so is an image whose shape would make the resize write more than
  :data:`MAX_RESIZED_PIXELS` pixels (a 1 KB PNG of 1,000,000x1 pixels resized to 64 would
  be 64x64,000,000 pixels, 12 GB, before the crop).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from ..core.errors import DataError

#: Images larger than this are refused as decompression bombs (8192 x 8192, 192 MiB as RGB;
#: below Pillow's own limit, so the bound holds whatever ``Image.MAX_IMAGE_PIXELS`` is).
MAX_PIXELS = 8192 * 8192

#: The most pixels the resize step may write (before the crop): 4096 x 4096, so at the
#: largest ``image_size`` (1024) an aspect ratio of up to 16 still resizes.
MAX_RESIZED_PIXELS = 4096 * 4096


class BadImage(DataError):
    """An image that cannot be decoded; the message names it."""


def _to_8bit(img: Image.Image) -> Image.Image:
    array = np.asarray(img)
    if img.mode.startswith("I;16") or (img.mode == "I" and array.max(initial=0) <= 65535):
        array = array.astype(np.float64) / 257.0
    elif img.mode == "F" and array.max(initial=0) <= 1.0:
        array = array.astype(np.float64) * 255.0
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def decode_image(source: bytes | Path, channels: int, name: str | None = None) -> torch.Tensor:
    """Decode ``source`` to a uint8 tensor of shape ``(channels, H, W)``; ``channels`` is 1
    or 3. Raises :class:`BadImage` naming ``name`` (default: the path) on any failure."""
    label = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            with opened as file:
                img: Image.Image = file
                if img.width * img.height > MAX_PIXELS:
                    raise BadImage(f"{label}: {img.width}x{img.height} pixels is over the "
                                   f"limit of {MAX_PIXELS} (decompression bomb?)")
                img.load()  # decode now, so truncated data fails here
                img = ImageOps.exif_transpose(img)
                if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                    img = _to_8bit(img)
                has_alpha = img.mode in ("RGBA", "LA", "PA") or (
                    img.mode == "P" and "transparency" in img.info)
                if has_alpha:
                    img = _flatten_alpha(img)
                img = img.convert("L" if channels == 1 else "RGB")
                return TF.pil_to_tensor(img)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{label}: refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise BadImage(f"{label}: cannot decode image: not a recognised image format") \
            from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BadImage(f"{label}: cannot decode image: {reason}") from None


def resized_shape(height: int, width: int, size: int, crop_width: int | None = None
                  ) -> tuple[int, int]:
    """(height, width) after resizing to cover ``size`` rows and ``crop_width`` columns
    (default: ``size``, a square) keeping the aspect ratio. For a square this is
    torchvision's rule: the shorter side becomes ``size`` and the longer one is truncated,
    never rounded up; otherwise the side that limits the crop is scaled exactly and the
    other rounded up, so the crop always fits."""
    if crop_width is None or crop_width == size:
        if width <= height:
            return int(size * height / width), size
        return size, int(size * width / height)
    if width * size >= height * crop_width:  # wider than the crop: the height limits it
        return size, max(crop_width, -(-width * size // height))
    return max(size, -(-height * crop_width // width)), crop_width


def resize_center_crop(image: torch.Tensor, size: int, name: str = "image",
                       width: int | None = None) -> torch.Tensor:
    """Resize keeping the aspect ratio until the image covers ``size`` rows and ``width``
    columns (antialiased), then center-crop to ``size`` x ``width`` (default: a ``size``
    square: the shorter side resized to ``size``, as the PyTorch DCGAN example prepares
    LSUN).

    Raises :class:`BadImage` naming ``name`` when the resize would write more than
    :data:`MAX_RESIZED_PIXELS` pixels (an extreme aspect ratio), before allocating them.
    """
    crop_width = size if width is None else width
    height, old_width = image.shape[-2:]
    new_height, new_width = resized_shape(height, old_width, size, crop_width)
    target = f"{size}" if crop_width == size else f"{size}x{crop_width}"
    if new_height * new_width > MAX_RESIZED_PIXELS:
        raise BadImage(f"{name}: {old_width}x{height} pixels is too elongated to resize to "
                       f"{target}: {new_width}x{new_height} pixels would be over the limit "
                       f"of {MAX_RESIZED_PIXELS}")
    if crop_width == size:
        image = TF.resize(image, [size], antialias=True)
    else:
        image = TF.resize(image, [new_height, new_width], antialias=True)
    return TF.center_crop(image, [size, crop_width])


def to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return image.float().div_(127.5).sub_(1.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded (the inverse of :func:`to_unit_range`)."""
    return image.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)

