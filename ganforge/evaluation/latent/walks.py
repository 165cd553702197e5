"""Latent walks (DCGAN §6.1): linear and spherical interpolation, the walks' latents and
(for conditional generators) their classes and labels, and their grid, animation frames and
GIF. See :mod:`ganforge.evaluation.latent`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from ...core.errors import UsageError
from ...core.interfaces import Generator
from ...core.seeds import derive_seed
from ...sampling import parse_class

#: Interpolation modes accepted by :func:`interpolate` and :func:`interpolation_latents`.
MODES = ("auto", "slerp", "linear")
#: Below this ``sin(angle)`` two latents count as parallel and slerp falls back to lerp.
PARALLEL_EPS = 1e-6
#: :func:`~ganforge.core.seeds.derive_seed` stream of the walks' classes (:func:`walk_row_classes`).
WALK_CLASSES_STREAM = "walk-classes"
#: White padding between the tiles of a grid, in pixels.
GRID_PADDING = 2


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

