"""The building blocks of the built-in augmentations (``augmentations.py``): a
``grid_sample`` differentiable twice, float32 random draws from the step's generator,
autocast switched off, the validator of comma-separated op lists, and the batched affine
and colour matrices ADA composes."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F

# -- a grid_sample whose backward is differentiable -----------------------------------------

_BILINEAR, _REFLECTION = 0, 2  # aten's enums for grid_sample's mode and padding_mode


class _GridSampleReflect(torch.autograd.Function):
    """Bilinear ``grid_sample`` with reflection padding (``align_corners=False``) of images
    by a grid that needs no gradient, differentiable twice with respect to the images.

    torch 2.11 has no derivative of ``grid_sampler_2d_backward`` (on CUDA and on the CPU;
    the CPU build of 2.14 has one), so R1 and the gradient penalty (double backward
    through D and the augmentation) failed with ADA on an H100. The image gradient of
    ``grid_sample`` is linear in the incoming gradient and does not depend on the images,
    so its own derivative is ``grid_sample`` again: the same fix as StyleGAN2-ADA's
    ``grid_sample_gradfix``."""

    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(images, grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        images, grid = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        return _GridSampleReflectBackward.apply(grad_output, images, grid), None


class _GridSampleReflectBackward(torch.autograd.Function):
    """The image gradient of :class:`_GridSampleReflect`, itself differentiable."""

    @staticmethod
    def forward(ctx: Any, grad_output: torch.Tensor, images: torch.Tensor,
                grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grid)
        grad_images, _ = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, images, grid, _BILINEAR, _REFLECTION, False, [True, False])
        return grad_images

    @staticmethod
    def backward(ctx: Any, grad2: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grid,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return _GridSampleReflect.apply(grad2, grid), None, None


def grid_sample_reflect(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
    align_corners=False)``, differentiable any number of times with respect to ``images``
    on every device (``grid`` gets no gradient)."""
    return _GridSampleReflect.apply(images, grid.detach())


# -- helpers --------------------------------------------------------------------------------


def split_ops(value: str) -> list[str]:
    """The names of a comma-separated op list, stripped, in the order given."""
    return [name.strip() for name in value.split(",")]


@attrs.frozen(repr=False)
class _OpList:
    """Validator of a comma-separated list of op names, each one of ``known``, none
    repeated, at least one."""

    known: tuple[str, ...]

    def __call__(self, _instance: object, attribute: attrs.Attribute, value: str) -> None:
        names = split_ops(value)
        if names == [""]:
            raise ValueError(f"'{attribute.name}' names no op (known: {', '.join(self.known)}; "
                             "for no augmentation use 'none')")
        unknown = [n for n in names if n not in self.known]
        if unknown:
            raise ValueError(f"'{attribute.name}' has unknown op(s) "
                             f"{', '.join(repr(n) for n in unknown)}; known: "
                             f"{', '.join(self.known)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"'{attribute.name}' names {', '.join(map(repr, repeated))} twice")

    def __repr__(self) -> str:
        return f"<ops from {', '.join(self.known)}>"


def _uniform(n: int, generator: torch.Generator, device: torch.device,
             *shape: int) -> torch.Tensor:
    """``n`` (times ``shape``) float32 draws from U[0, 1)."""
    return torch.rand(n, *shape, generator=generator, device=device)


def _normal(n: int, generator: torch.Generator, device: torch.device,
            *shape: int) -> torch.Tensor:
    """``n`` (times ``shape``) float32 draws from N(0, 1)."""
    return torch.randn(n, *shape, generator=generator, device=device)


@contextlib.contextmanager
def _no_autocast(device: torch.device) -> Iterator[None]:
    """Autocast off: the geometry and colour maths stay in float32 under a bf16 step."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield


# -- matrices -------------------------------------------------------------------------------


def _matrix(rows: Sequence[Sequence[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """A batch of matrices ``(N, R, C)`` from rows of per-sample ``(N,)`` tensors and
    constants."""
    elems = [e if isinstance(e, torch.Tensor) else torch.full_like(like, float(e))
             for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(like.shape[0], len(rows), len(rows[0]))


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched product of small matrices, elementwise in float32: exact to float32 whatever
    the TF32 and autocast settings (which would round a ``@`` of the transforms)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _translate3d(t: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def _scale3d(s: torch.Tensor) -> torch.Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def _rotate3d_luma(theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` about the luma axis ``(1, 1, 1) / sqrt(3)`` (a hue rotation)."""
    v = 1.0 / math.sqrt(3.0)
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    a, b = v * v * cc + c, v * v * cc
    return _matrix([[a, b - v * s, b + v * s, 0],
                    [b + v * s, a, b - v * s, 0],
                    [b - v * s, b + v * s, a, 0],
                    [0, 0, 0, 1]], theta)


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, C, height, width), align_corners=False)``, computed
    elementwise in float32 (``affine_grid`` is a matrix product, which TF32 or autocast
    would round to a fraction of a pixel)."""
    device = theta.device
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs, ys = xs.view(1, 1, width), ys.view(1, height, 1)
    t = theta.view(-1, 6, 1, 1)
    gx = t[:, 0] * xs + t[:, 1] * ys + t[:, 2]
    gy = t[:, 3] * xs + t[:, 4] * ys + t[:, 5]
    return torch.stack([gx, gy], dim=-1)
