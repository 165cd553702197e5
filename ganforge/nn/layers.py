"""Normalization building blocks shared by network plugins.

A network that offers a choice of normalization takes one ``norm`` param with a value of
:data:`NORMS`, so ``"discriminator.norm" = ["batch", "spectral", "layer", "none"]`` is a
sweep axis for any shipped network (and for a plugin's that uses these helpers):

- ``batch``: BatchNorm after each hidden convolution (Ioffe & Szegedy, 2015; DCGAN).
- ``spectral``: spectral normalization of every weight layer (Miyato et al., 2018) and no
  feature normalization; :func:`spectral` wraps the layers.
- ``layer``: layer normalization of each sample's features over channels and pixels, with a
  per-channel affine transform (``GroupNorm`` with one group, as Kurach et al. 2019 use
  it in D).
- ``none``: no normalization at all.

Spectral normalization uses torch's parametrization
(:func:`torch.nn.utils.parametrizations.spectral_norm`): one power iteration per training
forward pass, its vectors ``u``/``v`` kept as buffers, so checkpoints and the EMA of G carry
them and resume is exact. :class:`SpectralNorm` computes what torch's does and has its
state-dict keys, but also works under ``torch.compile`` (torch's fails in Inductor when a
compiled D is called twice before its backward pass, as a GAN step does).
"""

from __future__ import annotations

from typing import TypeVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

#: The ``norm`` values a network may offer.
NORMS: tuple[str, ...] = ("batch", "spectral", "layer", "none")

M = TypeVar("M", bound=nn.Module)


def norm_validator(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    """attrs validator of a ``norm`` param: one of :data:`NORMS`."""
    if value not in NORMS:
        raise ValueError(f"'{attribute.name}' must be one of {list(NORMS)}: {value!r}")


def feature_norm(kind: str, channels: int) -> nn.Module:
    """The feature normalization after a hidden convolution with ``channels`` outputs:
    ``BatchNorm2d`` for ``batch``, one-group ``GroupNorm`` (layer norm over C, H, W) for
    ``layer``, nothing (``Identity``) for ``spectral`` and ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind in ("spectral", "none"):
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use one of {list(NORMS)}")


def has_feature_norm(kind: str) -> bool:
    """True when ``kind`` puts a normalization layer (with its own affine parameters)
    after hidden convolutions, so those convolutions need no bias."""
    return kind in ("batch", "layer")


@torch.compiler.disable
def _store(buffer: torch.Tensor, value: torch.Tensor) -> None:
    """``buffer.copy_(value)`` outside any compiled graph."""
    buffer.copy_(value)


class SpectralNorm(_SpectralNorm):
    """torch's spectral-norm parametrization (same initialisation, buffers, keys and
    values), safe under ``torch.compile``.

    torch's version updates ``u``/``v`` in place and clones them for the backward pass;
    Inductor drops the clone and saves the buffers themselves, so a second forward pass
    before the backward (real and fake batches through one D) fails with "modified by an
    inplace operation" (torch 2.11 on CUDA and 2.14 on the CPU). Here the power iteration
    is out of place and the buffers are written outside the compiled graph (one graph
    break per layer, in training only)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            with torch.no_grad():
                u, v = self._u, self._v
                for _ in range(self.n_power_iterations):
                    u = F.normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps)
                    v = F.normalize(torch.mv(weight_mat.H, u), dim=0, eps=self.eps)
                _store(self._u, u)
                _store(self._v, v)
        else:
            u, v = self._u.clone(), self._v.clone()
        sigma = torch.vdot(u, torch.mv(weight_mat, v))
        return weight / sigma


def spectral(module: M, enabled: bool = True) -> M:
    """``module`` with spectral normalization of its ``weight`` when ``enabled`` (else the
    module itself): :class:`SpectralNorm`, one power iteration per training forward, as
    :func:`torch.nn.utils.parametrizations.spectral_norm` registers it."""
    if not enabled:
        return module
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor to normalize")
    dim = 1 if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d
                          | nn.ConvTranspose3d) else 0
    parametrize.register_parametrization(
        module, "weight", SpectralNorm(weight, n_power_iterations=1, dim=dim, eps=1e-12))
    return module


def spectral_all(module: nn.Module) -> nn.Module:
    """Spectral normalization of every convolution and linear layer inside ``module``
    (applied after weight initialisation, so the initial weights are what they were)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            setattr(module, name, spectral(child))
        else:
            spectral_all(child)
    return module
