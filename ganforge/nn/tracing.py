"""A module tracer for architecture audits: which layers of any ``nn.Module`` tree run, in
which order, grouped into weight layers with the norms and activations after them.

:func:`trace` runs one eval-mode, no-grad forward pass with forward hooks on the leaf
modules (and on known layer types as a whole, such as a convolution with parametrization
children) and returns the :class:`Call` of each in execution order; :func:`group` turns
them into a :class:`Structure`: the weight layers (:class:`Layer`: a convolution or linear
layer, then the BatchNorms, other norms and activations executed after it) and the pooling
or upsampling modules. The network is left exactly as it was found: training flags are
restored and hooks removed, even when the pass raises, and since the pass runs in eval
mode under ``torch.no_grad()`` BatchNorm statistics and parameters are untouched.

Functional calls (``torch.relu(x)`` inside ``forward``) are invisible to module hooks, so a
ruleset built on this reads them as missing. The DCGAN plugin's guidelines
(``ganforge_dcgan.audit``) are such a ruleset; the type groups below are what rules test
layers against. :func:`spectral_weight` finds the weight before spectral normalization
(torch's parametrization, ganforge's :class:`ganforge.nn.layers.SpectralNorm`, or the older
forward pre-hook).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn.modules import activation as _activation_module
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import UninitializedParameter
from torch.nn.utils import parametrize

__all__ = [
    "ACTIVATION_TYPES", "BATCHNORM_TYPES", "CONV_TRANSPOSE_TYPES", "CONV_TYPES", "Call",
    "Layer", "NOOP_TYPES", "OTHER_NORM_TYPES", "POOL_TYPES", "RESAMPLE_TYPES",
    "Structure", "TRACE_AS_LEAF", "UNPOOL_TYPES", "UPSAMPLE_TYPES", "WEIGHT_TYPES", "group",
    "is_spectral", "spectral_weight", "trace", "traced_leaves", "usable_tensor",
]

#: BatchNorm of any dimension (torch's common base class).
BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (_BatchNorm,)


def _nn_types(*names: str) -> tuple[type[nn.Module], ...]:
    """Return the ``torch.nn`` classes among ``names`` that this torch version provides."""
    return tuple(getattr(nn, name) for name in names if hasattr(nn, name))


CONV_TYPES = _nn_types("Conv1d", "Conv2d", "Conv3d")
CONV_TRANSPOSE_TYPES = _nn_types("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
WEIGHT_TYPES = (*CONV_TYPES, *CONV_TRANSPOSE_TYPES, nn.Linear)
UNPOOL_TYPES = _nn_types("MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d")
POOL_TYPES = UNPOOL_TYPES + _nn_types(
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "FractionalMaxPool2d", "FractionalMaxPool3d",
)  # fmt: skip
UPSAMPLE_TYPES = _nn_types("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
RESAMPLE_TYPES = (*POOL_TYPES, *UPSAMPLE_TYPES)
NOOP_TYPES = _nn_types(
    "Identity", "Flatten", "Unflatten",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
)  # fmt: skip
OTHER_NORM_TYPES = _nn_types(
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm",
)  # fmt: skip
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(
    obj
    for obj in (getattr(_activation_module, name) for name in _activation_module.__all__)
    if isinstance(obj, type) and issubclass(obj, nn.Module) and obj is not nn.MultiheadAttention
)
TRACE_AS_LEAF = (
    *WEIGHT_TYPES,
    *RESAMPLE_TYPES,
    *NOOP_TYPES,
    _BatchNorm,
    *OTHER_NORM_TYPES,
    *ACTIVATION_TYPES,
)


@attrs.frozen
class Call:
    """One traced execution of a leaf module."""

    path: str
    module: nn.Module

    @property
    def label(self) -> str:
        """``"path (ClassName)"``, the way offenders are named in details (the class before
        any parametrization: ``Conv2d``, not ``ParametrizedConv2d``)."""
        cls = parametrize.type_before_parametrizations(self.module)
        return f"{self.path or '<root>'} ({cls.__name__})"


@attrs.define
class Layer:
    """A weight layer and the norm / activation modules executed after it."""

    weight: Call
    batchnorms: list[Call] = attrs.field(factory=list)
    other_norms: list[Call] = attrs.field(factory=list)
    activations: list[Call] = attrs.field(factory=list)

    @property
    def label(self) -> str:
        """Label of the layer's weight module."""
        return self.weight.label


@attrs.frozen
class Structure:
    """The traced network: its layers in execution order and any resampling modules."""

    layers: tuple[Layer, ...]
    resamplers: tuple[Call, ...]


def traced_leaves(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules to hook: leaves, plus known layer types even if they have children.

    Known layer types (a Conv with ``torch.nn.utils.parametrize`` children, for example)
    are traced as a whole and their descendants are skipped.
    """
    selected: list[tuple[str, nn.Module]] = []
    prefixes: list[str] = []
    for path, module in network.named_modules():
        if any(path.startswith(prefix) for prefix in prefixes):
            continue
        if isinstance(module, TRACE_AS_LEAF) or next(module.children(), None) is None:
            selected.append((path, module))
            prefixes.append(f"{path}." if path else "")
    return selected


def spectral_weight(module: nn.Module) -> torch.Tensor | None:
    """The weight before spectral normalization when ``module`` has it (torch's
    parametrization or the older forward pre-hook), else None."""
    if parametrize.is_parametrized(module, "weight"):
        chain: Any = module.parametrizations["weight"]  # type: ignore[index]
        # torch's class, or ganforge.nn.layers.SpectralNorm (a subclass that works compiled)
        from torch.nn.utils.parametrizations import _SpectralNorm

        if any(isinstance(p, _SpectralNorm) for p in chain):
            return chain.original
    from torch.nn.utils.spectral_norm import SpectralNorm

    hooks = getattr(module, "_forward_pre_hooks", {}).values()
    if any(isinstance(hook, SpectralNorm) for hook in hooks):
        original = getattr(module, "weight_orig", None)
        return original if isinstance(original, torch.Tensor) else None
    return None


def is_spectral(module: nn.Module) -> bool:
    """True when ``module``'s weight is spectrally normalized."""
    return spectral_weight(module) is not None


def _make_hook(calls: list[Call], path: str) -> Callable[[nn.Module, object, object], None]:
    def hook(module: nn.Module, _args: object, _output: object) -> None:
        calls.append(Call(path, module))

    return hook


def trace(network: nn.Module, inputs: torch.Tensor,
           labels: torch.Tensor | None = None) -> list[Call]:
    """Run one eval-mode, no-grad forward pass and return the leaf calls in order.

    The pass is ``network(inputs)``, or ``network(inputs, labels)`` when labels are given.
    Every module's training flag is restored and every hook removed afterwards, even if
    the forward pass raises.
    """
    calls: list[Call] = []
    flags = [(module, module.training) for module in network.modules()]
    handles = []
    try:
        for path, module in traced_leaves(network):
            handles.append(module.register_forward_hook(_make_hook(calls, path)))
        network.eval()
        with torch.no_grad():
            if labels is None:
                network(inputs)
            else:
                network(inputs, labels)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags:
            module.training = flag
    return calls


def group(calls: Iterable[Call]) -> Structure:
    """Group traced leaf calls into weight layers; collect pooling / upsampling calls."""
    layers: list[Layer] = []
    resamplers: list[Call] = []
    for call in calls:
        module = call.module
        if isinstance(module, WEIGHT_TYPES):
            layers.append(Layer(call))
        elif isinstance(module, RESAMPLE_TYPES):
            resamplers.append(call)
        elif isinstance(module, NOOP_TYPES) or not layers:
            continue
        elif isinstance(module, _BatchNorm):
            layers[-1].batchnorms.append(call)
        elif isinstance(module, OTHER_NORM_TYPES):
            layers[-1].other_norms.append(call)
        elif isinstance(module, ACTIVATION_TYPES):
            layers[-1].activations.append(call)
    return Structure(tuple(layers), tuple(resamplers))


def usable_tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """Return a usable (initialised, non-empty) parameter ``name`` of ``module``, if any."""
    value = getattr(module, name, None)
    if not isinstance(value, torch.Tensor) or isinstance(value, UninitializedParameter):
        return None
    if value.numel() == 0:
        return None
    return value.detach().float()
