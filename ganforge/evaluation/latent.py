"""Latent-space walks and vector arithmetic on averaged latents (DCGAN paper, §6.1 and §6.3.2).

Two experiments from Radford et al. (2016) that show a generator has learnt a smooth,
semantically organised latent space rather than memorising images:

* **Latent walk** (§6.1): images along a path between two random latents should change
  smoothly. :func:`interpolation_latents` lays out ``rows`` walks of ``steps`` latents each,
  endpoints included; :func:`walk_grid` and :func:`walk_frames` render them as a grid and as
  animation frames for :func:`write_gif`.

  DCGAN interpolated *linearly* (:func:`lerp`) in its uniform ``[-1, 1]`` prior. For a
  normal prior spherical interpolation (:func:`slerp`, White 2016, "Sampling generative
  networks") is the better choice: random Gaussian latents live near a sphere of radius
  ``sqrt(latent_dim)``, and the straight line between two of them cuts through the
  low-density interior (the midpoint of two orthogonal latents is ``1/sqrt(2)`` as long).
  For the uniform prior slerp is the wrong choice: it bulges outwards, so the path leaves the
  cube (the midpoint of two orthogonal latents is ``lerp``'s midpoint scaled by
  ``1/cos(45°) ≈ 1.41``), where the generator was never trained. Mode ``"auto"`` therefore
  picks linear for a generator whose ``params.prior`` is ``"uniform"`` and slerp otherwise.

* **Vector arithmetic** (§6.3.2, Fig. 7, "smiling woman - neutral woman + neutral man =
  smiling man"): single latents are unstable, so each concept is the mean of three
  exemplar latents picked from a numbered sample sheet (:func:`sheet_latents`,
  :func:`label_sheet`); the result ``mean(A) - mean(B) + mean(C)``
  (:func:`arithmetic_latent`) is rendered together with a neighbourhood of noisy copies
  (:func:`neighbourhood`; the paper added uniform noise of scale 0.25) by
  :func:`arithmetic_figure`.

**Conditional generators** (``G(z, y)``) get classes too. A walk holds a class fixed
(``--class K``), walks between two classes (``--class A:B``: the class weights go linearly
from one-hot A to one-hot B along the same ``t`` as the latents, :func:`walk_labels`), or,
given no class, draws each row's class from the walk's seed (:func:`walk_row_classes`).
The arithmetic holds one class for the whole sheet and figure; the sheet's record keeps it
(and whether the EMA generator drew it) so the figure uses the same
(:func:`sheet_class`, :func:`check_sheet_ema`).

Everything here is a pure function of its arguments; the ``ganforge interpolate`` and
``ganforge arithmetic`` commands are thin wrappers around it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from ..errors import UsageError
from ..interfaces import Generator
from ..sampling import parse_class
from ..seeds import derive_seed

#: Interpolation modes accepted by :func:`interpolate` and :func:`interpolation_latents`.
MODES = ("auto", "slerp", "linear")
#: Below this ``sin(angle)`` two latents count as parallel and slerp falls back to lerp.
PARALLEL_EPS = 1e-6
#: Format tag written into a sample sheet's JSON record.
SHEET_FORMAT = "ganforge.arithmetic-sheet/1"
#: Default number of exemplars that make up one concept (the paper averaged three).
EXEMPLARS_PER_CONCEPT = 3
#: The class a conditional generator's arithmetic sheet draws when ``--class`` is not given.
DEFAULT_SHEET_CLASS = 0
#: :func:`~ganforge.seeds.derive_seed` stream of the walks' classes (:func:`walk_row_classes`).
WALK_CLASSES_STREAM = "walk-classes"

# Figure geometry, in pixels (see :func:`arithmetic_figure_size`).
MARGIN = 8
PAD = 4
SECTION = 16
LABEL_WIDTH = 100
HEADER = 20
#: Tiles are upscaled (nearest neighbour) to at least this many pixels so labels stay legible.
MIN_TILE = 96
GRID_PADDING = 2


# -- interpolation ------------------------------------------------------------------------


def _as_weight(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor broadcastable against ``like[..., :1]``.

    A 1-D ``t`` of length N against ``like`` of shape ``(N, D)`` gives one weight per row.
    """
    weight = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if weight.dim() >= 1 and weight.dim() == like.dim() - 1:
        weight = weight.unsqueeze(-1)
    return weight


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - t) a + t b`` along the last dimension.

    ``a`` and ``b`` have shape ``(..., D)`` (typically ``(N, latent_dim)``); ``t`` is a float
    or a tensor broadcastable against ``a[..., :1]`` (a 1-D ``t`` of length N is one weight
    per row). ``t = 0`` returns ``a`` and ``t = 1`` returns ``b`` exactly. This is what the
    DCGAN paper used; for two equal-norm vectors the midpoint is shorter than either.
    """
    weight = _as_weight(t, a)
    return (1 - weight) * a + weight * b


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, eps: float = PARALLEL_EPS
) -> torch.Tensor:
    """Spherical interpolation along the great circle from ``a`` to ``b`` (Shoemake 1985).

    ``slerp(a, b, t) = sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b`` with ``w`` the angle
    between each pair of rows; shapes and ``t`` as in :func:`lerp`, the result has the shape
    of ``a``. Endpoints are exact, and for equal-norm vectors every point keeps that norm.
    Where the angle is undefined or degenerate (``sin(w) < eps``: parallel or anti-parallel
    vectors, or a zero vector) the row falls back to :func:`lerp`. The angle is computed in
    float64 for accuracy; the result has ``a``'s dtype.
    """
    weight = _as_weight(t, a).double()
    a64, b64 = a.double(), b.double()
    norms = a64.norm(dim=-1, keepdim=True) * b64.norm(dim=-1, keepdim=True)
    cos = ((a64 * b64).sum(dim=-1, keepdim=True) / norms.clamp_min(1e-300)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    degenerate = (sin < eps) | (norms <= 0)
    safe_sin = torch.where(degenerate, torch.ones_like(sin), sin)
    spherical = (
        torch.sin((1 - weight) * omega) / safe_sin * a64
        + torch.sin(weight * omega) / safe_sin * b64
    )
    linear = (1 - weight) * a64 + weight * b64
    return torch.where(degenerate, linear, spherical).to(a.dtype)


def latent_prior(generator: Generator) -> str | None:
    """The generator's declared prior (``generator.params.prior``), or ``None`` if it has none.

    The DCGAN generator declares ``"uniform"`` (on ``[-1, 1]``, the paper's) or ``"normal"``.
    """
    prior = getattr(getattr(generator, "params", None), "prior", None)
    return prior if isinstance(prior, str) else None


def resolve_mode(generator: Generator, mode: str = "auto") -> str:
    """``"slerp"`` or ``"linear"``: ``"auto"`` is linear for a uniform prior, else slerp."""
    if mode not in MODES:
        raise UsageError(f"interpolation mode {mode!r} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    return "linear" if latent_prior(generator) == "uniform" else "slerp"


def walk_endpoints(generator: Generator, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The start and end latents of ``rows`` walks, each ``(rows, latent_dim)`` on the CPU.

    ``generator.sample_latent(2 * rows, torch.Generator().manual_seed(seed), "cpu")``: the
    first ``rows`` latents are the starts, the next ``rows`` the ends. Drawn on the CPU so a
    seed gives the same walk on every device.
    """
    if rows < 1:
        raise UsageError(f"rows must be at least 1, got {rows}")
    z = generator.sample_latent(2 * rows, torch.Generator().manual_seed(seed), "cpu")
    return z[:rows], z[rows:]


def interpolation_latents(
    generator: Generator, rows: int, steps: int, seed: int, mode: str = "auto"
) -> torch.Tensor:
    """Latents of ``rows`` walks of ``steps`` points each, shape ``(rows * steps, latent_dim)``.

    Row ``r`` walks from ``walk_endpoints(...)[0][r]`` (column 0) to
    ``walk_endpoints(...)[1][r]`` (column ``steps - 1``) at ``t = linspace(0, 1, steps)``;
    rows are stored one after the other (row-major), the layout of a grid with
    ``nrow=steps``. ``mode`` is ``"slerp"``, ``"linear"`` or ``"auto"`` (see
    :func:`resolve_mode`). The result lives on the CPU.
    """
    if steps < 2:
        raise UsageError(f"steps must be at least 2 (both endpoints), got {steps}")
    resolved = resolve_mode(generator, mode)
    start, end = walk_endpoints(generator, rows, seed)
    dim = start.shape[-1]
    t = torch.linspace(0.0, 1.0, steps, dtype=start.dtype)
    a = start.unsqueeze(1).expand(rows, steps, dim).reshape(rows * steps, dim)
    b = end.unsqueeze(1).expand(rows, steps, dim).reshape(rows * steps, dim)
    weights = t.repeat(rows)
    interpolate_fn = slerp if resolved == "slerp" else lerp
    return interpolate_fn(a, b, weights)


def parse_walk_classes(
    text: str | None, classes: int, conditional: bool, option: str = "--class"
) -> tuple[int, int] | None:
    """The classes ``option`` gives a walk: ``(K, K)`` for ``"K"`` (every row holds class K),
    ``(A, B)`` for ``"A:B"`` (every row walks from class A to class B), ``None`` for ``"all"``
    or no option (each row draws its own class, :func:`walk_row_classes`).

    Each class is checked like :func:`~ganforge.sampling.parse_class` does (``0`` to
    ``classes - 1``); an unconditional generator given any class is its UsageError line.
    """
    if text is None or ":" not in text or not conditional:
        label = parse_class(text, classes, conditional, option)
        return None if label is None else (label, label)
    ends: list[int] = []
    for part in text.split(":", 1):
        try:
            value = int(part)
        except ValueError:
            value = -1
        if not 0 <= value < classes:
            raise UsageError(
                f"{option} {text!r}: {part!r} is not a class: use K or A:B with classes 0 to "
                f"{classes - 1}, or all"
            )
        ends.append(value)
    return ends[0], ends[1]


def walk_row_classes(classes: int, rows: int, seed: int) -> torch.Tensor:
    """The class of each of ``rows`` walks (int64, ``(rows,)``) for a conditional generator
    given no class: uniform over ``0 .. classes - 1``, drawn on the CPU from the
    :data:`WALK_CLASSES_STREAM` stream of ``seed``. A stream of its own, so the walks'
    latents are the same as with ``--class`` (and as for an unconditional generator)."""
    if classes < 1:
        raise UsageError(f"a conditional walk needs at least one class, got {classes}")
    rng = torch.Generator().manual_seed(derive_seed(seed, WALK_CLASSES_STREAM))
    return torch.randint(classes, (rows,), generator=rng, dtype=torch.int64)


def walk_labels(
    start: torch.Tensor, end: torch.Tensor, steps: int, classes: int
) -> torch.Tensor:
    """The labels of ``rows = len(start)`` walks of ``steps`` points, row-major like
    :func:`interpolation_latents`: row ``r`` goes from class ``start[r]`` to ``end[r]``.

    When every row starts and ends on the same class these are class indices (int64,
    ``(rows * steps,)``). Otherwise they are class weights (float32,
    ``(rows * steps, classes)``) going linearly from one-hot ``start[r]`` to one-hot
    ``end[r]`` at ``t = linspace(0, 1, steps)``, the ``t`` of the latents; the endpoints are
    exactly one-hot, so they draw the same images as the class indices.
    """
    if steps < 2:
        raise UsageError(f"steps must be at least 2 (both endpoints), got {steps}")
    start = torch.as_tensor(start, dtype=torch.int64).cpu()
    end = torch.as_tensor(end, dtype=torch.int64).cpu()
    if torch.equal(start, end):
        return start.repeat_interleave(steps)
    rows = start.shape[0]
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float32)
    a = F.one_hot(start, classes).float().repeat_interleave(steps, dim=0)
    b = F.one_hot(end, classes).float().repeat_interleave(steps, dim=0)
    return lerp(a, b, t.repeat(rows))


def walk_grid(images: torch.Tensor, steps: int) -> torch.Tensor:
    """A ``rows x steps`` grid (CHW in [0, 1], 2 px white padding) of walk images in [-1, 1]."""
    return make_grid(
        images.detach().float().cpu(),
        nrow=steps,
        padding=GRID_PADDING,
        normalize=True,
        value_range=(-1.0, 1.0),
        pad_value=1.0,
    )


def walk_frames(images: torch.Tensor, rows: int, steps: int) -> list[torch.Tensor]:
    """One frame per step (CHW in [0, 1]), each a near-square grid of all rows at that step."""
    per_row = images.detach().float().cpu().reshape(rows, steps, *images.shape[1:])
    nrow = max(1, math.ceil(math.sqrt(rows)))
    return [
        make_grid(
            per_row[:, step],
            nrow=nrow,
            padding=GRID_PADDING,
            normalize=True,
            value_range=(-1.0, 1.0),
            pad_value=1.0,
        )
        for step in range(steps)
    ]


def _to_pil(image: torch.Tensor) -> Image.Image:
    """A CHW tensor in [0, 1] (1 or 3 channels) as an ``L`` or ``RGB`` PIL image."""
    array = image.detach().float().cpu().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array[:3].permute(1, 2, 0).contiguous().numpy(), mode="RGB")


def write_gif(
    frames: Sequence[torch.Tensor], path: str | Path, ms_per_frame: int = 100, pingpong: bool = True
) -> Path:
    """Write frames (CHW tensors in [0, 1], all one size) as a GIF that loops forever.

    With ``pingpong`` the animation goes forth and back: frames ``0 .. n-1`` then
    ``n-2 .. 1``, so ``2n - 2`` frames for ``n >= 2`` and no frame shown twice in a row.
    Note that GIF writers merge consecutive identical frames.
    """
    if not frames:
        raise UsageError("write_gif needs at least one frame")
    images = [_to_pil(frame) for frame in frames]
    if pingpong and len(images) > 2:
        images = images + images[-2:0:-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(ms_per_frame),
        loop=0,
    )
    return path


# -- vector arithmetic --------------------------------------------------------------------


def sheet_latents(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """The ``n`` latents of a sample sheet, ``(n, latent_dim)`` on the CPU.

    Drawn exactly like ``ganforge sample --n N --seed S``, so a sheet is reproducible from
    ``(seed, n)`` alone and is the same on every device.
    """
    if n < 1:
        raise UsageError(f"a sheet needs at least one sample, got n = {n}")
    return generator.sample_latent(n, torch.Generator().manual_seed(seed), "cpu")


def parse_indices(text: str, option: str, n: int, count: int = EXEMPLARS_PER_CONCEPT) -> list[int]:
    """``"3,17,22"`` as ``[3, 17, 22]``: exactly ``count`` distinct indices in ``0 .. n-1``.

    Errors are :class:`UsageError` lines that name ``option`` (e.g. ``"--a"``).
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    indices: list[int] = []
    for part in parts:
        try:
            indices.append(int(part))
        except ValueError:
            raise UsageError(
                f"{option}: {part!r} is not a sheet index (expected "
                f"{count} comma-separated integers such as 3,17,22)"
            ) from None
    if len(indices) != count:
        raise UsageError(
            f"{option}: expected exactly {count} comma-separated sheet indices, "
            f"got {len(indices)} ({text!r})"
        )
    for index in indices:
        if not 0 <= index < n:
            raise UsageError(
                f"{option}: index {index} is out of range; the sheet has indices 0..{n - 1}"
            )
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise UsageError(
            f"{option}: index {repeated[0]} is given more than once; pick "
            f"{count} different exemplars"
        )
    return indices


def concept_mean(latents: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
    """The mean of ``latents[indices]``, shape ``(latent_dim,)``: one concept's latent.

    Averaging several exemplars gives a stable concept vector where single latents do not
    (§6.3.2). An index outside ``0 .. len(latents)-1`` is a :class:`UsageError`.
    """
    if not indices:
        raise UsageError("a concept needs at least one exemplar index")
    n = latents.shape[0]
    for index in indices:
        if not 0 <= int(index) < n:
            raise UsageError(f"index {index} is out of range; valid indices are 0..{n - 1}")
    return latents[torch.as_tensor(list(indices), dtype=torch.long)].mean(dim=0)


def arithmetic_latent(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a - b + c``, e.g. smiling woman - neutral woman + neutral man = smiling man."""
    return a - b + c


def neighbourhood(
    z: torch.Tensor, k: int, scale: float, seed: int, prior: str | None = "uniform"
) -> torch.Tensor:
    """``k`` noisy copies of the latent ``z``, shape ``(k, latent_dim)``.

    For the ``"uniform"`` prior the noise is uniform on ``[-scale, scale]``, as in the paper
    (scale 0.25); for any other prior it is ``scale * N(0, I)``. The noise comes from a CPU
    generator seeded from ``seed`` through a derived stream, so it does not repeat the
    latents that ``sample_latent`` draws for the same seed.
    """
    if k < 0:
        raise UsageError(f"the neighbourhood size must be >= 0, got {k}")
    base = z.detach().reshape(1, -1).cpu()
    rng = torch.Generator().manual_seed(derive_seed(seed, "neighbourhood"))
    shape = (k, base.shape[1])
    if prior == "uniform":
        noise = torch.rand(shape, generator=rng, dtype=base.dtype).mul_(2).sub_(1)
    else:
        noise = torch.randn(shape, generator=rng, dtype=base.dtype)
    return base + scale * noise


# -- rendering ----------------------------------------------------------------------------


def default_scale(image_size: int) -> int:
    """Nearest-neighbour upscale factor that makes tiles at least :data:`MIN_TILE` px."""
    return max(1, math.ceil(MIN_TILE / image_size))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _label_font_size(tile: int) -> int:
    return max(10, min(18, tile // 6))


def _draw_tag(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font: Any) -> None:
    """White text on a black box with its top-left corner at ``xy``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = xy
    draw.rectangle((x, y, x + (right - left) + 4, y + (bottom - top) + 4), fill=(0, 0, 0))
    draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def _upscaled(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Images in [-1, 1] as float CPU tensors in [0, 1], upscaled by ``scale`` (nearest)."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    images = images.clamp(-1.0, 1.0).add(1.0).div(2.0)
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def label_sheet(
    images: torch.Tensor, indices: Sequence[int] | None = None, scale: int | None = None
) -> Image.Image:
    """A numbered sample sheet: a near-square grid of ``images`` with each index drawn on it.

    ``images`` are ``(N, C, H, W)`` in [-1, 1]; ``indices[i]`` (default ``i``) is written in
    the top-left corner of tile ``i``. Tiles are upscaled by ``scale`` (default
    :func:`default_scale`, 3 for 32 px images) so the labels are legible; the grid has
    ``ceil(sqrt(N))`` columns and 2 px white padding, so its width is
    ``cols * H * scale + (cols + 1) * 2``.
    """
    count = images.shape[0]
    labels = list(range(count)) if indices is None else [int(i) for i in indices]
    if len(labels) != count:
        raise UsageError(f"label_sheet: {count} images but {len(labels)} indices")
    scale = scale or default_scale(images.shape[-1])
    tiles = _upscaled(images, scale)
    nrow = max(1, math.ceil(math.sqrt(count)))
    grid = make_grid(tiles, nrow=nrow, padding=GRID_PADDING, pad_value=1.0)
    sheet = _to_pil(grid).convert("RGB")
    draw = ImageDraw.Draw(sheet)
    tile_h, tile_w = tiles.shape[-2:]
    font = _font(_label_font_size(tile_w))
    for i, label in enumerate(labels):
        row, col = divmod(i, nrow)
        x = GRID_PADDING + col * (tile_w + GRID_PADDING)
        y = GRID_PADDING + row * (tile_h + GRID_PADDING)
        _draw_tag(draw, (x, y), str(label), font)
    return sheet


def arithmetic_figure_size(
    image_size: int, exemplars: int, neighbours: int, scale: int, concepts: int = 3
) -> tuple[int, int]:
    """``(width, height)`` in pixels of :func:`arithmetic_figure`'s output.

    With tile ``T = image_size * scale`` and ``cols = max(exemplars, neighbours, 1)``:
    width ``= 2*MARGIN + LABEL_WIDTH + T + SECTION + cols*T + (cols-1)*PAD`` and height
    ``= 2*MARGIN + HEADER + (concepts+1)*T + (concepts-1)*PAD + SECTION``. For 32 px images,
    3 exemplars, 8 neighbours and scale 3 that is 1024 x 444.
    """
    tile = image_size * scale
    cols = max(exemplars, neighbours, 1)
    width = 2 * MARGIN + LABEL_WIDTH + tile + SECTION + cols * tile + (cols - 1) * PAD
    height = 2 * MARGIN + HEADER + (concepts + 1) * tile + (concepts - 1) * PAD + SECTION
    return width, height


def arithmetic_figure(
    exemplars: Sequence[torch.Tensor],
    means: torch.Tensor,
    result: torch.Tensor,
    neighbours: torch.Tensor,
    indices: Sequence[Sequence[int]] | None = None,
    labels: Sequence[str] = ("A", "B", "C", "A - B + C"),
    scale: int | None = None,
) -> Image.Image:
    """The vector-arithmetic figure (after DCGAN Fig. 7), one labelled row per latent.

    All images are ``(…, C, H, W)`` in [-1, 1]. ``exemplars[i]`` holds concept ``i``'s
    exemplar images and ``means[i]`` the image of their mean latent; ``result`` is the image
    of ``A - B + C`` and ``neighbours`` (possibly empty) the images of its noisy copies.
    Layout, left to right: the row label (``labels``), the latent's own image (mean or
    result, under the header "z"), a gap, then the exemplars (tagged ``#index`` from
    ``indices``) or the neighbourhood. The result row sits below a separator line. Size:
    :func:`arithmetic_figure_size`.
    """
    if len(labels) != len(exemplars) + 1 or means.shape[0] != len(exemplars):
        raise UsageError(
            f"arithmetic_figure: {len(exemplars)} concepts need "
            f"{len(exemplars)} means and {len(exemplars) + 1} labels"
        )
    size = means.shape[-1]
    scale = scale or default_scale(size)
    tile = size * scale
    neighbour_tiles = _upscaled(neighbours, scale) if neighbours.numel() else None
    exemplar_count = max((e.shape[0] if e.dim() == 4 else 1) for e in exemplars)
    k = 0 if neighbour_tiles is None else neighbour_tiles.shape[0]
    width, height = arithmetic_figure_size(size, exemplar_count, k, scale, len(exemplars))
    figure = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    label_font = _font(14)
    tag_font = _font(_label_font_size(tile))
    z_x = MARGIN + LABEL_WIDTH
    samples_x = z_x + tile + SECTION
    header_y = MARGIN + (HEADER - 14) // 2
    draw.text((z_x, header_y), "z", fill=(0, 0, 0), font=label_font)
    draw.text(
        (samples_x, header_y),
        "exemplars from the sheet / z + noise",
        fill=(0, 0, 0),
        font=label_font,
    )

    def paste(image: torch.Tensor, x: int, y: int, tag: str | None = None) -> None:
        figure.paste(_to_pil(image).convert("RGB"), (x, y))
        if tag is not None:
            _draw_tag(draw, (x, y), tag, tag_font)

    def row_label(text: str, y: int) -> None:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=label_font)
        draw.text(
            (MARGIN, y + (tile - (bottom - top)) // 2 - top), text, fill=(0, 0, 0), font=label_font
        )

    mean_tiles = _upscaled(means, scale)
    y = MARGIN + HEADER
    for i, concept in enumerate(exemplars):
        row_label(labels[i], y)
        paste(mean_tiles[i], z_x, y, "mean")
        row_indices = list(indices[i]) if indices is not None else None
        for j, image in enumerate(_upscaled(concept, scale)):
            tag = f"#{row_indices[j]}" if row_indices is not None else None
            paste(image, samples_x + j * (tile + PAD), y, tag)
        y += tile + (PAD if i < len(exemplars) - 1 else 0)
    line_y = y + SECTION // 2
    draw.line((MARGIN, line_y, width - MARGIN, line_y), fill=(160, 160, 160), width=1)
    y += SECTION
    row_label(labels[-1], y)
    paste(_upscaled(result, scale)[0], z_x, y)
    if neighbour_tiles is not None:
        for j, image in enumerate(neighbour_tiles):
            paste(image, samples_x + j * (tile + PAD), y)
    return figure


# -- the sheet record ---------------------------------------------------------------------


def sheet_record_path(sheet: str | Path) -> Path:
    """The JSON record beside a sheet image: ``sheet.png`` -> ``sheet.json``."""
    return Path(sheet).with_suffix(".json")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a whole file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sheet_record(
    checkpoint: str | Path,
    step: int,
    seed: int,
    n: int,
    generator: Generator,
    label: int | None = None,
    ema: bool | None = None,
) -> dict[str, Any]:
    """What a sheet's JSON holds: enough to redraw its latents and to recognise its checkpoint.

    The latents themselves are not stored; :func:`sheet_latents` redraws them from
    ``(seed, n)``. The checkpoint is identified by the sha256 of the whole file (so a copied
    or moved checkpoint still matches); its path and step are kept for messages. ``label``
    (a conditional generator's class, ``"class"`` in the JSON) and ``ema`` (whether the EMA
    generator drew the sheet) are written when given.
    """
    record: dict[str, Any] = {
        "format": SHEET_FORMAT,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "step": int(step),
        "seed": int(seed),
        "n": int(n),
        "latent_dim": int(generator.latent_dim),
        "prior": latent_prior(generator),
    }
    if label is not None:
        record["class"] = int(label)
    if ema is not None:
        record["ema"] = bool(ema)
    return record


def sheet_class(
    text: str | None, classes: int, conditional: bool, option: str = "--class"
) -> int | None:
    """The one class a new arithmetic sheet draws: ``None`` for an unconditional generator
    (given a class, :func:`~ganforge.sampling.parse_class`'s error), else class ``text``, or
    :data:`DEFAULT_SHEET_CLASS` when ``text`` is None. ``all`` is refused: the arithmetic
    averages latents of one class."""
    if text is None:
        return DEFAULT_SHEET_CLASS if conditional else None
    label = parse_class(text, classes, conditional, option)
    if label is None:
        raise UsageError(
            f"{option} {text}: the arithmetic holds one class; give {option} K "
            f"(0 to {classes - 1}, default {DEFAULT_SHEET_CLASS})"
        )
    return label


def recorded_class(
    record: dict[str, Any],
    text: str | None,
    classes: int,
    conditional: bool,
    record_path: str | Path,
    option: str = "--class",
) -> int | None:
    """The class a sheet's record says it was drawn in (``None``: unconditional), checked
    against the generator (``classes``, ``conditional``) and against ``text``, a class given
    again in step 2 (which must name the same class). Records written before classes
    existed hold none and stay valid for unconditional generators."""
    value = record.get("class")
    if not conditional:
        if text is not None:
            parse_class(text, classes, conditional, option)  # raises: unconditional
        if value is not None:
            raise UsageError(
                f"{record_path}: records class {_shown(value)}, but this checkpoint's "
                "generator is unconditional; write the sheet again"
            )
        return None
    if value is None:
        raise UsageError(
            f"{record_path}: records no class, but this checkpoint's generator is "
            "conditional; write the sheet again"
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < classes:
        raise UsageError(
            f"{record_path}: class is {_shown(value)}, not an integer from 0 to "
            f"{classes - 1}; write the sheet again"
        )
    if text is not None:
        given = parse_class(text, classes, conditional, option)
        if given != value:
            raise UsageError(
                f"{option} {text} does not match the sheet ({record_path} says {value}); "
                f"leave {option} out in step 2"
            )
    return value


def check_sheet_ema(
    record: dict[str, Any], ema_used: bool, checkpoint_has_ema: bool, record_path: str | Path
) -> None:
    """Refuse (UsageError) a figure drawn with another generator than the sheet: the EMA
    one where the sheet used the raw one (``--no-ema``), or the other way round.

    ``record["ema"]`` says which drew the sheet; a record without it predates ``--no-ema``
    and was drawn with the default, the EMA generator when ``checkpoint_has_ema``.
    """
    recorded = record.get("ema", checkpoint_has_ema)
    if not isinstance(recorded, bool):
        raise UsageError(
            f"{record_path}: ema is {_shown(recorded)}, not true or false; write the sheet again"
        )
    if recorded and not ema_used:
        raise UsageError(
            f"--no-ema does not match the sheet ({record_path}: drawn with the EMA "
            "generator); leave --no-ema out in step 2"
        )
    if ema_used and not recorded:
        raise UsageError(
            f"the sheet was drawn with --no-ema ({record_path}: the raw generator); give "
            "--no-ema in step 2 as well"
        )


def checkpoint_has_ema(checkpoint: str | Path) -> bool:
    """Whether a checkpoint holds an EMA of its generator (read from its header only)."""
    from ..training.checkpoint_format import EMA_PREFIX, read_header

    return bool(read_header(checkpoint).section(EMA_PREFIX))


def _shown(value: Any) -> str:
    """A record value for a message, cut when long (the record may have been edited)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def write_sheet_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a :func:`sheet_record` as pretty JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_sheet_record(sheet: str | Path) -> dict[str, Any]:
    """The JSON record of a sheet image; a missing or malformed record is a UsageError."""
    path = sheet_record_path(sheet)
    if not path.is_file():
        raise UsageError(
            f"{path}: no sheet record; write the sheet first with "
            f"`ganforge arithmetic CHECKPOINT --sheet {sheet}`"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path}: not a readable sheet record: {(str(exc).splitlines() or [''])[0]}"
        ) from None
    missing = [
        key
        for key in ("checkpoint_sha256", "seed", "n")
        if not isinstance(record, dict) or key not in record
    ]
    if not isinstance(record, dict) or record.get("format") != SHEET_FORMAT or missing:
        raise UsageError(
            f"{path}: not a ganforge arithmetic sheet record "
            f"(format {SHEET_FORMAT!r} with seed, n and checkpoint_sha256)"
        )
    return record


def check_sheet_record(
    record: dict[str, Any], checkpoint: str | Path, step: int, record_path: str | Path
) -> None:
    """Refuse (UsageError) a sheet record drawn from another checkpoint than ``checkpoint``."""
    if record["checkpoint_sha256"] != file_sha256(checkpoint):
        raise UsageError(
            f"{record_path}: the sheet was drawn from {record.get('checkpoint', '?')} "
            f"(step {record.get('step', '?')}), not from {checkpoint} (step {step}); "
            f"write a new sheet with `ganforge arithmetic {checkpoint} --sheet ...`"
        )
