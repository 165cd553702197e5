"""Sample grids: images from a generator laid out and written as image files.

Also the bounds every sampling command checks before it loads anything: image counts,
seeds and output paths, each refused with one :class:`~ganforge.errors.UsageError` line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from .errors import UsageError
from .files import writing
from .interfaces import Generator

#: Most images one command draws into one grid or sheet (a 64 x 64 grid): more is
#: unreadable as a picture and only costs memory.
MAX_IMAGES = 4096
#: Seeds are ``torch.Generator.manual_seed`` values in ``[0, 2**63)``.
SEED_LIMIT = 2**63
#: Latents per forward pass in :func:`generate`: bounds the activations' memory.
GENERATE_CHUNK = 256
#: Image file suffixes a grid can be written as, with their Pillow format.
IMAGE_FORMATS: dict[str, str] = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
}


@torch.no_grad()
def generate(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    """Images for latents ``z`` in eval mode (BatchNorm running statistics), in [-1, 1];
    at most :data:`GENERATE_CHUNK` latents go through the network at once."""
    was_training = generator.training
    generator.eval()
    try:
        chunks = z.split(GENERATE_CHUNK) or (z,)  # an empty batch is one empty chunk
        return torch.cat([generator(chunk).float().clamp(-1.0, 1.0) for chunk in chunks])
    finally:
        generator.train(was_training)


def image_grid(images: torch.Tensor) -> torch.Tensor:
    """A near-square grid (CHW, values in [0, 1]) of images in [-1, 1]."""
    nrow = max(1, math.ceil(math.sqrt(images.shape[0])))
    return make_grid(images.detach().cpu(), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1.0, 1.0), pad_value=1.0)


def write_grid(grid: torch.Tensor, path: Path) -> Path:
    """Write a grid from :func:`image_grid` in the format its suffix names (PNG for
    ``.png``); a file that cannot be written is one StorageError line naming it."""
    image_format = _image_format(path, "output")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path, format=image_format)
    return path


def _image_format(path: Path, option: str) -> str:
    """The Pillow format for ``path``'s suffix, or a UsageError naming those accepted."""
    formats = _writable_formats()
    image_format = formats.get(path.suffix.lower())
    if image_format is None:
        accepted = ", ".join(sorted(formats))
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise UsageError(f"{option} {str(path)!r}: {shown} is not an image format ganforge "
                         f"writes; use one of {accepted}")
    return image_format


def _writable_formats() -> dict[str, str]:
    """:data:`IMAGE_FORMATS` less WebP where Pillow was built without it."""
    from PIL import features

    webp = features.check("webp")
    return {k: v for k, v in IMAGE_FORMATS.items() if v != "WEBP" or webp}


def check_output_path(text: str | Path, option: str, image: bool = True) -> Path:
    """The file path ``text`` given as ``option``, refused (UsageError) when it names a
    folder (an existing one, or any path ending in a separator), sits under a file, or,
    with ``image``, has a suffix :func:`write_grid` cannot write."""
    raw = os.fspath(text)
    path = Path(raw)
    if not raw or raw.endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(f"{option} {raw!r} is a folder; give a file name such as "
                         f"{str(path / 'samples.png')!r}")
    ancestor = next((p for p in path.parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise UsageError(f"{option} {raw!r}: {str(ancestor)!r} is a file, not a folder")
    if image:
        _image_format(path, option)
    return path


def check_count(n: int, option: str, limit: int = MAX_IMAGES, low: int = 1) -> int:
    """``n`` when ``low <= n <= limit``, else one UsageError line naming ``option``."""
    if not low <= n <= limit:
        raise UsageError(f"{option} {_shown(n)} is out of range: {low} to {limit}")
    return n


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` when it is a valid latent seed, in ``[0, 2**63)``."""
    if not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{option} {_shown(seed)} is out of range: 0 to 2**63 - 1")
    return seed


def _shown(n: int) -> str:
    """An integer as typed, cut when it is absurdly long."""
    text = str(n)
    return text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"
