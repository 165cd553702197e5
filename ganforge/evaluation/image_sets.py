"""Saved images scored like a generator's (issue 26, item 12): a folder of PNG/JPEG files
or an ``.npz`` of samples written by any toolkit, read into one uint8 tensor and turned
into the features the metrics compare (:func:`image_set_features`), so ganforge can be the
reference evaluator of images it did not generate.

A folder's ``.png``, ``.jpg`` and ``.jpeg`` files are read in sorted name order with Pillow,
all of one size and mode (RGB, or L for grayscale); an ``.npz`` holds one uint8 array,
NHWC or NCHW with 1 or 3 channels, under the key ``arr_0`` or ``images``, read with
``allow_pickle=False``. At most ``limit`` images are read (the metrics' ``MAX_IMAGES``); any
other content is one UsageError line naming the file.

``ganforge eval --fake-images`` (:mod:`ganforge.api.evaluate_images`) gives the images to
the evaluator through :class:`ImageSetGenerator`, so they are scored with the same
pipeline and protocol records as a checkpoint's generator.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UsageError
from .features import FeatureSet
from .metrics import MAX_IMAGES

#: Image files a folder of samples may hold.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Keys an ``.npz`` of samples may keep its images under.
NPZ_KEYS = ("arr_0", "images")


def load_image_set(path: Path, limit: int = MAX_IMAGES, option: str = "--fake-images"
                   ) -> torch.Tensor:
    """The images of a folder or ``.npz`` as a uint8 NCHW tensor (at most ``limit``)."""
    if path.is_dir():
        return _folder(path, limit, option)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path, limit, option)
    raise UsageError(f"{option} {str(path)!r}: not a folder of images or an .npz file")


def _folder(folder: Path, limit: int, option: str) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())[:limit]
    if len(files) < 2:
        raise UsageError(f"{option} {str(folder)!r}: holds {len(files)} .png/.jpg image(s); "
                         "scores need at least 2")
    arrays: list[np.ndarray] = []
    for file in files:
        try:
            with Image.open(file) as image:
                mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                array = np.asarray(image.convert(mode), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UsageError(f"{option} {str(file)!r}: not a readable image ({exc})") from None
        if arrays and array.shape != arrays[0].shape:
            raise UsageError(f"{option} {str(file)!r}: {_shape(array)} differs from the "
                             f"{_shape(arrays[0])} of {files[0].name}; give images of one "
                             "size and mode")
        arrays.append(array)
    stacked = np.stack(arrays)
    if stacked.ndim == 3:
        stacked = stacked[:, :, :, None]
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def _shape(array: np.ndarray) -> str:
    return "x".join(str(d) for d in array.shape)


def _npz(path: Path, limit: int, option: str) -> torch.Tensor:
    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in NPZ_KEYS if k in data.files), None)
            if key is None:
                raise UsageError(f"{option} {str(path)!r}: no array under {' or '.join(NPZ_KEYS)} "
                                 f"(it holds {', '.join(data.files) or 'nothing'})")
            array = data[key]
    except UsageError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{option} {str(path)!r}: not a readable .npz ({exc})") from None
    if array.dtype != np.uint8:
        raise UsageError(f"{option} {str(path)!r}: {key} is {array.dtype}, not uint8 images "
                         "(0 to 255)")
    if array.ndim != 4 or not ({1, 3} & {array.shape[1], array.shape[3]}):
        raise UsageError(f"{option} {str(path)!r}: {key} has shape {array.shape}; expected "
                         "N x H x W x C or N x C x H x W with 1 or 3 channels")
    if array.shape[0] < 2:
        raise UsageError(f"{option} {str(path)!r}: {array.shape[0]} image(s); scores need "
                         "at least 2")
    array = array[:limit]
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if array.shape[3] in (1, 3) and array.shape[1] not in (1, 3):
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.contiguous()


def image_set_features(images: torch.Tensor, extractor: Any, n: int, batch_size: int,
                       device: torch.device | str = "cpu") -> FeatureSet:
    """Features of the first ``n`` of ``images`` (uint8 NCHW), given to ``extractor`` as a
    generator's images are: float in [-1, 1], in batches of ``batch_size``."""
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for start in range(0, min(n, len(images)), batch_size):
        batch = images[start:min(start + batch_size, n)].to(device).float().div(127.5).sub(1)
        f, class_logits = extractor(batch)
        features.append(f.float().cpu())
        if class_logits is not None:
            logits.append(class_logits.float().cpu())
    return FeatureSet(torch.cat(features), torch.cat(logits) if logits else None)


def image_set_digest(images: torch.Tensor) -> str:
    """SHA-256 of the images' pixels (uint8 NCHW, in order): which images were scored."""
    import hashlib

    digest = hashlib.sha256(f"{tuple(images.shape)}".encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


class ImageSetGenerator(torch.nn.Module):
    """Saved images (uint8 NCHW) served to the evaluator as a generator's images, so they
    are scored exactly as a checkpoint's are (the same features, protocol records and
    reference statistics).

    :meth:`sample_latent` gives the positions of the next images rather than latents, and
    ``forward`` those images in [-1, 1]. A pass over the images starts at the first one
    whenever the evaluator starts drawing from a freshly seeded ``torch.Generator`` (it
    seeds one per metric group and seed), so every pass scores the first ``n`` images in
    order, whatever its seed. Asking for more images than there are is a UsageError."""

    conditional = False

    def __init__(self, images: torch.Tensor, option: str = "--fake-images") -> None:
        super().__init__()
        self.images = images
        self.option = option
        self._next = 0

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        fresh = torch.Generator().manual_seed(generator.initial_seed()).get_state()
        if torch.equal(generator.get_state(), fresh):
            self._next = 0
        torch.rand(1, generator=generator)  # the pass has begun: its next call is not fresh
        if self._next + n > len(self.images):
            raise UsageError(f"{self.option}: {len(self.images)} images given, "
                             f"{self._next + n} asked for (give --n {len(self.images)} or "
                             "fewer)")
        positions = torch.arange(self._next, self._next + n)
        self._next += n
        return positions if device is None else positions.to(device)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.images[positions.cpu()].to(positions.device).float().div(127.5).sub(1)
