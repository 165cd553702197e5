"""Helpers for networks that take class labels and draw latents, shared by the shipped
network plugins and open to any plugin's: how many classes a network is built for, the
labels checked (as class indices or class weights), refusing labels an unconditional
network is given, and the latent prior."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..core.errors import UsageError

#: The latent priors a generator may offer.
PRIORS: tuple[str, ...] = ("uniform", "normal")


def label_classes(network: str, conditional: bool, classes: int) -> int:
    """How many classes ``network`` is built for: the dataset's ``classes`` when
    conditional, 0 otherwise (then the network is exactly the unconditional one).

    A conditional network on a dataset without classes is a usage error, told in one line.
    """
    if not conditional:
        return 0
    if classes <= 0:
        raise UsageError(f"{network}: conditional = true needs a dataset with classes; "
                         "dataset gives none")
    return classes


def checked_labels(network: str, y: torch.Tensor | None, classes: int, batch: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """The labels of a conditional network, checked: class indices (an integer tensor of
    shape ``(N,)``, returned as int64) or class weights (a float tensor of shape
    ``(N, classes)``: one-hot rows, or mixtures of them to walk from one class to another,
    returned in ``dtype``)."""
    if y is None:
        raise TypeError(f"{network}: conditional, so it is called with labels as its "
                        "second argument")
    if y.is_floating_point():
        if y.shape != (batch, classes):
            raise ValueError(f"{network}: class weights must have shape ({batch}, {classes}), "
                             f"not {tuple(y.shape)}")
        return y.to(dtype)
    if y.shape != (batch,):
        raise ValueError(f"{network}: class indices must have shape ({batch},), "
                         f"not {tuple(y.shape)}")
    return y.long()


def class_weights(network: str, y: torch.Tensor | None, classes: int, batch: int,
                  dtype: torch.dtype) -> torch.Tensor:
    """The labels of a conditional network as ``(N, classes)`` class weights of ``dtype``:
    :func:`checked_labels`, with class indices made one-hot rows."""
    labels = checked_labels(network, y, classes, batch, dtype)
    return labels if labels.is_floating_point() else F.one_hot(labels, classes).to(dtype)


def refuse_labels(network: str, y: torch.Tensor | None) -> None:
    """An unconditional network called with labels: say so rather than ignore them."""
    if y is not None:
        raise TypeError(f"{network}: unconditional (conditional = false), so it takes no "
                        "labels")


def sample_prior(prior: str, n: int, latent_dim: int, generator: torch.Generator,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` latents of size ``latent_dim`` from ``prior`` (``uniform`` on [-1, 1], or
    ``normal``), drawn with the seeded ``generator`` on ``device`` (default: the
    generator's)."""
    device = device if device is not None else generator.device
    shape = (n, latent_dim)
    if prior == "uniform":
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)
    if prior == "normal":
        return torch.randn(shape, generator=generator, device=device)
    raise ValueError(f"unknown prior {prior!r}; use one of {list(PRIORS)}")
