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


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``size``, by torchvision's rule
    (the longer side is truncated, never rounded up)."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_center_crop(image: torch.Tensor, size: int, name: str = "image") -> torch.Tensor:
    """Resize the shorter side to ``size`` (antialiased), then center-crop a square, as
    the PyTorch DCGAN example prepares LSUN.

    Raises :class:`BadImage` naming ``name`` when the resize would write more than
    :data:`MAX_RESIZED_PIXELS` pixels (an extreme aspect ratio), before allocating them.
    """
    height, width = image.shape[-2:]
    new_height, new_width = resized_shape(height, width, size)
    if new_height * new_width > MAX_RESIZED_PIXELS:
        raise BadImage(f"{name}: {width}x{height} pixels is too elongated to resize to "
                       f"{size}: {new_width}x{new_height} pixels would be over the limit of "
                       f"{MAX_RESIZED_PIXELS}")
    image = TF.resize(image, [size], antialias=True)
    return TF.center_crop(image, [size, size])


def to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return image.float().div_(127.5).sub_(1.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded (the inverse of :func:`to_unit_range`)."""
    return image.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)

