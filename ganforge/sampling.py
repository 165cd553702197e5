"""Sample grids: images from a generator laid out and written as image files.

Also the bounds every sampling command checks before it loads anything: image counts,
seeds and output paths, each refused with one :class:`~ganforge.core.errors.UsageError` line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from .core.errors import UsageError
from .core.interfaces import Generator, is_conditional
from .io.files import writing

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
def generate(generator: Generator, z: torch.Tensor, labels: torch.Tensor | None = None
             ) -> torch.Tensor:
    """Images for latents ``z`` (and, for a conditional generator, ``labels``: class
    indices or class weights, one row per latent) in eval mode (BatchNorm running
    statistics), in [-1, 1]; at most :data:`GENERATE_CHUNK` latents go through the network
    at once."""
    conditional = is_conditional(generator)
    if conditional and labels is None:
        raise UsageError("this generator is conditional: give the classes to draw")
    was_training = generator.training
    generator.eval()
    try:
        chunks = z.split(GENERATE_CHUNK) or (z,)  # an empty batch is one empty chunk
        label_chunks = (labels.to(z.device).split(GENERATE_CHUNK) or (labels,)
                        if conditional and labels is not None else [None] * len(chunks))
        return torch.cat([
            (generator(chunk, y) if conditional else generator(chunk)).float().clamp(-1.0, 1.0)
            for chunk, y in zip(chunks, label_chunks, strict=True)])
    finally:
        generator.train(was_training)


def grid_classes(classes: int, count: int) -> list[int]:
    """The classes shown as rows of a class grid of about ``count`` images: every class
    when there are at most ``count``, else ``count`` classes evenly spread."""
    if classes <= count:
        return list(range(classes))
    return sorted({round(i * (classes - 1) / (count - 1)) for i in range(count)}) \
        if count > 1 else [0]


def class_grid_inputs(z: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and labels of a class grid: one row per class in ``classes``, the same
    latents ``z`` in every row (so a column shows one latent across classes)."""
    columns = z.shape[0]
    labels = torch.tensor(classes, dtype=torch.int64).repeat_interleave(columns)
    return z.repeat(len(classes), *([1] * (z.dim() - 1))), labels.to(z.device)


def parse_class(text: str | None, classes: int, conditional: bool,
                option: str = "--class") -> int | None:
    """The class ``text`` names (``None``: every class, for ``all`` or no option given), checked
    against the ``classes`` of a generator; one UsageError line when it is not a class or the
    generator is not conditional."""
    if text is None:
        return None
    if not conditional:
        raise UsageError(f"{option} {text}: this checkpoint's generator is unconditional "
                         "(it draws no particular class)")
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < classes:
        raise UsageError(f"{option} {text!r} is not a class: use 0 to {classes - 1} or all")
    return value


def class_labels(n: int, label: int, device: torch.device | str) -> torch.Tensor:
    """``n`` labels of class ``label``."""
    return torch.full((n,), label, dtype=torch.int64, device=device)


def columns_for(count: int, rows: int) -> int:
    """Latents per row of a class grid of about ``count`` images in ``rows`` rows."""
    return max(1, count // max(rows, 1))


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """A grid (CHW, values in [0, 1]) of images in [-1, 1]: ``nrow`` images per row,
    default near-square."""
    if nrow is None:
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


def truncated_latent(generator: Generator, n: int, rng: torch.Generator,
                     threshold: float) -> torch.Tensor:
    """``n`` latents of ``generator`` under the truncation trick (BigGAN, Brock et al. 2019):
    every coordinate of ``z`` whose magnitude exceeds ``threshold`` is redrawn until
    ``|z| <= threshold``, i.e. ``z`` is drawn from the standard normal truncated to
    ``[-threshold, threshold]`` (here exactly, by the inverse CDF, in one pass). Drawn on the
    CPU with the seeded ``rng``. Only for a generator whose ``params.prior`` is ``normal``;
    any other prior (the DCGAN quickstart's is uniform on [-1, 1]) or none declared is one
    UsageError line."""
    check_truncation(threshold)
    prior = getattr(getattr(generator, "params", None), "prior", None)
    if prior != "normal":
        said = f"its prior is {prior!r}" if isinstance(prior, str) else \
            "it declares no latent prior (params.prior)"
        raise UsageError(f"--truncation {threshold:g}: the truncation trick redraws the tails "
                         f"of a normal prior; this generator's {said}")
    shape = generator.sample_latent(n, rng, "cpu").shape
    edge = math.erf(threshold / math.sqrt(2.0))
    u = torch.rand(shape, generator=rng, dtype=torch.float64).mul_(2).sub_(1).mul_(edge)
    z = torch.erfinv(u).mul_(math.sqrt(2.0)).clamp_(-threshold, threshold)
    return z.float()


def check_truncation(threshold: float | None) -> float | None:
    """``threshold`` when None or a finite number above 0, else one UsageError line."""
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise UsageError(f"--truncation {threshold}: the threshold must be a number above 0 "
                         "(e.g. 0.5; BigGAN's truncation threshold)")
    return threshold
