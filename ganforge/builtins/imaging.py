"""Decoding one image file into a training tensor (shared by file-based datasets)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError


def load_image(path: Path, image_size: int, channels: int) -> torch.Tensor:
    """Decode ``path``, convert to ``channels`` (1 or 3), resize the shorter side to
    ``image_size``, center-crop to a square and scale to [-1, 1].

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
        raise DataError(f"cannot decode image {str(path)!r}: {exc}") from exc
    tensor = TF.pil_to_tensor(img)
    tensor = TF.resize(tensor, [image_size], antialias=True)
    tensor = TF.center_crop(tensor, [image_size, image_size])
    return tensor.float().div_(127.5).sub_(1.0)
