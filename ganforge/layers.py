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
them and resume is exact.
"""

from __future__ import annotations

from typing import TypeVar

import attrs
from torch import nn

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


def spectral(module: M, enabled: bool = True) -> M:
    """``module`` with spectral normalization of its ``weight`` when ``enabled`` (else the
    module itself): torch's parametrization, one power iteration per training forward."""
    if not enabled:
        return module
    from torch.nn.utils.parametrizations import spectral_norm

    return spectral_norm(module)  # type: ignore[return-value]


def spectral_all(module: nn.Module) -> nn.Module:
    """Spectral normalization of every convolution and linear layer inside ``module``
    (applied after weight initialisation, so the initial weights are what they were)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            setattr(module, name, spectral(child))
        else:
            spectral_all(child)
    return module
