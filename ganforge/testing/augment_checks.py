"""Checks of augmentations: shape, dtype and device kept, differentiable, the same random
stream gives the same images, and D's real logits can be observed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .report import SkipCheck, fail


def _batch(seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    return (torch.rand((4, 3, 16, 16), generator=rng) * 2 - 1).to(dtype)


def _augment(augment: Any, images: torch.Tensor, seed: int = 1) -> torch.Tensor:
    out = augment(images, torch.Generator().manual_seed(seed))
    if not isinstance(out, torch.Tensor):
        raise fail(f"__call__ returned {type(out).__name__}, not a tensor")
    return out


def check_augment_output(augment: Any) -> None:
    """The augmented batch has the input's shape, dtype and device, and finite values; a
    float32 and a bfloat16 batch both work (D's inputs under autocast)."""
    for dtype in (torch.float32, torch.bfloat16):
        images = _batch(dtype=dtype)
        out = _augment(augment, images)
        if out.shape != images.shape or out.dtype != images.dtype \
                or out.device != images.device:
            raise fail(f"{dtype} batch {tuple(images.shape)} came back as {out.dtype} "
                       f"{tuple(out.shape)} on {out.device}")
        if not bool(torch.isfinite(out.float()).all()):
            raise fail(f"non-finite values in the augmented {dtype} batch")
    for step in (1, 2):
        augment.observe_real_logits(torch.linspace(-1, 1, 4) * step)


def check_augment_gradients(augment: Any) -> None:
    """Gradients flow through the augmentation to the input images (G learns through it),
    finite and not all zero."""
    if not getattr(augment, "changes_images", True):
        raise SkipCheck("the identity (changes_images = False)")
    images = _batch().requires_grad_(True)
    out = _augment(augment, images)
    if not out.requires_grad:
        raise fail("the augmented batch does not require grad: it must be differentiable")
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grad = images.grad
    if grad is None or not bool(torch.isfinite(grad).all()) or bool((grad == 0).all()):
        raise fail("no finite, non-zero gradient reaches the input images")


def check_augment_determinism(make: Callable[[], Any]) -> None:
    """Two fresh instances, given generators in the same state, return identical batches."""
    images = _batch()
    a, b = _augment(make(), images), _augment(make(), images)
    if not torch.equal(a, b):
        raise fail("the same images and random state give other augmented images")


def exercise_augment(augment: Any) -> None:
    """Use an augmentation as four D updates do (for the component state check)."""
    for step in (1, 2, 3, 4):
        augment.on_step(step)
        _augment(augment, _batch(step), seed=step)
        augment.observe_real_logits(torch.full((4,), 1.0))
