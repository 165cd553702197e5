"""Audit a generator / discriminator pair against the DCGAN architecture guidelines.

Radford et al. (2015), "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", list a handful of architecture guidelines for stable
GAN training:

1. no pooling: strided convolutions in D, fractional-strided (transposed) convolutions in G;
2. BatchNorm in G and D, except G's output layer and D's input layer;
3. no fully connected hidden layers (a Linear is only allowed as G's z projection and as
   D's logit layer);
4. ReLU in G for every layer except the output, which uses Tanh;
5. LeakyReLU(0.2) in every D layer (the logit layer is exempt and has no activation);
6. weights initialised from N(0, 0.02).

Spectral normalization (Miyato et al., 2018) is not in the paper: a spectrally normalized
weight layer is reported under the BatchNorm guideline (guideline 2 is the paper's word on
normalization), and a hidden layer that has it instead of BatchNorm says so. Its
initialisation is judged on the weight before normalization (torch's parametrization keeps
it as ``parametrizations.weight.original``, the older hook as ``weight_orig``): that is the
tensor drawn from N(0, 0.02). Affine norms other than BatchNorm (a layer norm's
``GroupNorm``) are judged like BatchNorm's, N(1, 0.02) with zero bias.

Each guideline is one row of :data:`_RULES` (its name, the networks it judges, its check);
the rows read every difference between G and D from the network's :class:`_Role`, and the
table runs once for G and once for D.

The audit is structure-agnostic: ganforge's tracer (:mod:`ganforge.nn.tracing`) follows
the real execution order of the leaf modules of *any* ``nn.Module`` tree with forward hooks
during a single forward pass and groups the traced leaves into layers (a weight layer plus
the norms and activations executed after it); the rules here check those layers. The
network is left exactly as it was found: training flags are restored, hooks are removed
and, since the pass runs in eval mode under ``torch.no_grad()``, BatchNorm running
statistics and parameters are untouched.

A conditional network (:func:`ganforge.core.interfaces.is_conditional`) is traced on its
inputs and class labels, ``network(inputs, labels)``; the labels are concatenated
functionally, so they add no layer and the guidelines read the same as without them.

Activations applied functionally (``torch.relu(x)`` inside ``forward``) are invisible to
module hooks and are therefore reported as missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganforge.core.audit import AuditResult
from ganforge.core.interfaces import is_conditional
from ganforge.nn import tracing

__all__ = [
    "AUDITOR",
    "GUIDELINES",
    "GuidelineResult",
    "audit",
    "audit_discriminator",
    "audit_generator",
]

AUDITOR = "DCGAN guidelines"
"""The ``auditor`` of every result; ``ganforge check`` titles the audit table with it."""

GuidelineResult = AuditResult
"""The former name of :class:`ganforge.AuditResult`, kept for code that imports it here."""

_GENERATOR = "generator"
_DISCRIMINATOR = "discriminator"
_BOTH = (_GENERATOR, _DISCRIMINATOR)

_INIT_STD = 0.02
_INIT_STD_RANGE = (0.015, 0.025)
_BN_MAX_STD = 0.05
_MIN_MEAN_TOLERANCE = 0.01
_ZERO_TOLERANCE = 1e-6

# The generic tracer is ganforge's (ganforge.nn.tracing); the rules below read it under
# these names.
_CONV_TRANSPOSE_TYPES = tracing.CONV_TRANSPOSE_TYPES
_CONV_TYPES = tracing.CONV_TYPES
_POOL_TYPES = tracing.POOL_TYPES
_UNPOOL_TYPES = tracing.UNPOOL_TYPES
_Call = tracing.Call
_Layer = tracing.Layer
_Structure = tracing.Structure
_group = tracing.group
_is_spectral = tracing.is_spectral
_spectral_weight = tracing.spectral_weight
_trace = tracing.trace
_tensor = tracing.usable_tensor


@attrs.frozen
class _Role:
    """What the guidelines expect of one network; the rules read every G/D difference here.

    Layers are the traced weight layers in execution order; indices may be negative.
    """

    network: str
    letter: str  # how details name the network: "G" or "D"
    first: str  # what its first layer is
    last: str  # what its last layer is
    direction: str  # "upsample" or "downsample" ...
    strided: tuple[type[nn.Module], ...]  # ... with these layers at stride > 1
    strided_name: str
    batchnorm: slice  # the layers that must have BatchNorm ...
    batchnorm_name: str  # ... and what details call them
    no_batchnorm: int  # the layer that must not have it
    linear: int  # the only layer that may be Linear
    activation: type[nn.Module]  # after every layer but the last ...
    leaky_slope: float | None  # ... with this negative slope (a LeakyReLU)
    output_activation: type[nn.Module] | None  # after the last layer; None: raw logits

    def name(self, index: int) -> str:
        """What the first (``index`` 0) or the last (-1) layer is, as details say it."""
        return self.first if index == 0 else self.last

    @property
    def activation_name(self) -> str:
        """``"ReLU"`` or ``"LeakyReLU(0.2)"``."""
        name = self.activation.__name__
        return name if self.leaky_slope is None else f"{name}({self.leaky_slope:g})"


_G = _Role(
    network=_GENERATOR, letter="G", first="z projection", last="output",
    direction="upsample", strided=_CONV_TRANSPOSE_TYPES, strided_name="ConvTranspose",
    batchnorm=slice(None, -1), batchnorm_name="layers before the output", no_batchnorm=-1,
    linear=0, activation=nn.ReLU, leaky_slope=None, output_activation=nn.Tanh,
)  # fmt: skip
_D = _Role(
    network=_DISCRIMINATOR, letter="D", first="input", last="logit",
    direction="downsample", strided=_CONV_TYPES, strided_name="Conv",
    batchnorm=slice(1, -1), batchnorm_name="hidden layers", no_batchnorm=0,
    linear=-1, activation=nn.LeakyReLU, leaky_slope=0.2, output_activation=None,
)  # fmt: skip

_Verdict = tuple[list[str], str]
"""What a check finds: the offenders (empty: passed) and the detail to show when it passes."""


def _max_stride(module: nn.Module) -> int:
    stride = getattr(module, "stride", 1)
    return max(stride) if isinstance(stride, tuple) else int(stride)


def _no_pooling(role: _Role, structure: _Structure) -> _Verdict:
    offenders = [
        f"{call.label} is a pooling layer"
        if isinstance(call.module, _POOL_TYPES)
        else f"{call.label} is an interpolation upsampling layer"
        for call in structure.resamplers
    ]
    return offenders, "no pooling or interpolation layers"


def _resamples(call: _Call) -> str:
    if isinstance(call.module, _UNPOOL_TYPES):
        return "unpools"
    return "pools" if isinstance(call.module, _POOL_TYPES) else "upsamples by interpolation"


def _strides(role: _Role, structure: _Structure) -> _Verdict:
    strided = [
        layer
        for layer in structure.layers
        if isinstance(layer.weight.module, role.strided) and _max_stride(layer.weight.module) > 1
    ]
    kind = role.strided_name
    offenders = []
    if not strided:
        offenders.append(f"no {kind} with stride > 1; {role.letter} must {role.direction} with it")
    offenders += [
        f"{call.label} {_resamples(call)} instead of a strided {kind}"
        for call in structure.resamplers
    ]
    return offenders, f"{role.direction}s with {len(strided)} strided {kind} layer(s)"


def _batchnorm(role: _Role, structure: _Structure) -> _Verdict:
    layers = structure.layers
    indices = range(len(layers))
    needing, free = indices[role.batchnorm], indices[role.no_batchnorm]
    where = role.name(role.no_batchnorm)
    offenders: list[str] = []
    for index, layer in enumerate(layers):
        spectral = _is_spectral(layer.weight.module)
        if index == free:
            offenders += [
                f"{norm.label} follows the {where} layer {layer.label}; {role.letter}'s "
                f"{where} layer must not have BatchNorm"
                for norm in layer.batchnorms
            ]
        if index in needing and not layer.batchnorms:
            instead = [f"{call.label} is not BatchNorm" for call in layer.other_norms]
            instead += ["spectral normalization instead"] if spectral else []
            offenders.append(f"{layer.label} has no BatchNorm"
                             + (f" ({', '.join(instead)})" if instead else ""))
        elif spectral:
            offenders.append(f"{layer.label} has spectral normalization, which the paper "
                             "does not use")
    count = len(needing)
    return offenders, (
        f"{count} of {count} {role.batchnorm_name} have BatchNorm; {where} layer has none"
    )


def _fully_connected(role: _Role, structure: _Structure) -> _Verdict:
    layers = structure.layers
    allowed = range(len(layers))[role.linear]
    ordinal, what = ("first" if role.linear == 0 else "last"), role.name(role.linear)
    offenders = [
        f"{layer.label} is a fully connected "
        f"{role.last if index == len(layers) - 1 else 'hidden'} layer; only "
        f"{role.letter}'s {ordinal} layer (the {what}) may be Linear"
        for index, layer in enumerate(layers)
        if index != allowed and isinstance(layer.weight.module, nn.Linear)
    ]
    if isinstance(layers[allowed].weight.module, nn.Linear):
        return offenders, f"only the {ordinal} layer ({what}) is Linear"
    return offenders, "no Linear layers"


def _activation_problem(role: _Role, module: nn.Module) -> str | None:
    if not isinstance(module, role.activation):
        return f"should be {role.activation_name}"
    if role.leaky_slope is not None:
        slope = float(getattr(module, "negative_slope", math.nan))
        if not math.isclose(slope, role.leaky_slope, rel_tol=1e-6):
            return f"has negative_slope={slope:g}, expected {role.leaky_slope:g}"
    return None


def _output_activation(role: _Role, layer: _Layer) -> list[str]:
    after = f"after the {role.last} layer {layer.label}"
    expected = role.output_activation
    if expected is None:
        return [
            f"{act.label} {after}: the sigmoid belongs to the loss (BCEWithLogitsLoss); "
            f"{role.letter} must output raw logits"
            if isinstance(act.module, nn.Sigmoid)
            else f"{act.label} {after}: {role.letter} must output raw logits with no activation"
            for act in layer.activations
        ]
    name = expected.__name__
    offenders = []
    if not layer.activations:
        offenders.append(f"{role.last} layer {layer.label} has no activation, expected {name}")
    offenders += [
        f"{act.label} {after} should be {name}"
        for act in layer.activations
        if not isinstance(act.module, expected)
    ]
    return offenders


def _activations(role: _Role, structure: _Structure) -> _Verdict:
    *body, last = structure.layers
    expected = role.activation_name
    offenders: list[str] = []
    for layer in body:
        if not layer.activations:
            offenders.append(f"{layer.label} has no activation, expected {expected}")
        for act in layer.activations:
            problem = _activation_problem(role, act.module)
            if problem is not None:
                offenders.append(f"{act.label} after {layer.label} {problem}")
    offenders += _output_activation(role, last)
    out = role.output_activation
    final = f"{out.__name__} on the output" if out is not None else "raw logits out"
    count = len(body)
    return offenders, (
        f"{expected} after {count} of {count} layers before the {role.last} layer; {final}"
    )


def _mean_tolerance(numel: int) -> float:
    """How far a sample mean of ``numel`` N(mu, 0.02) draws may stray from mu (4 sigma)."""
    return max(_MIN_MEAN_TOLERANCE, 4 * _INIT_STD / math.sqrt(numel))


def _weight_problems(weight: torch.Tensor) -> list[str]:
    std, mean = (value.item() for value in torch.std_mean(weight, correction=0))
    low, high = _INIT_STD_RANGE
    problems = []
    if abs(mean) > _mean_tolerance(weight.numel()):
        problems.append(f"weight mean {mean:+.4f}, expected ~0")
    if not low <= std <= high:
        problems.append(f"weight std {std:.4f} outside [{low}, {high}]")
    return problems


def _batchnorm_problems(module: nn.Module) -> list[str]:
    problems = []
    weight = _tensor(module, "weight")
    if weight is not None:
        std, mean = (value.item() for value in torch.std_mean(weight, correction=0))
        if abs(mean - 1.0) > _mean_tolerance(weight.numel()):
            problems.append(f"weight mean {mean:.4f}, expected ~1")
        if std > _BN_MAX_STD:
            problems.append(f"weight std {std:.4f} > {_BN_MAX_STD}")
    bias = _tensor(module, "bias")
    if bias is not None and bias.abs().max().item() > _ZERO_TOLERANCE:
        problems.append(f"bias not zero (max |b| = {bias.abs().max().item():.4f})")
    return problems


def _init(role: _Role, structure: _Structure) -> _Verdict:
    if not structure.layers:
        return ["no weight layers (Conv/ConvTranspose/Linear) were executed"], ""
    seen: set[int] = set()
    offenders: list[str] = []
    n_weights = n_spectral = 0
    norm_kinds: dict[str, int] = {}
    for layer in structure.layers:
        norms = [(n, True) for n in (*layer.batchnorms, *layer.other_norms)]
        for call, is_norm in [(layer.weight, False), *norms]:
            if id(call.module) in seen:
                continue
            seen.add(id(call.module))
            if is_norm:
                affine = _tensor(call.module, "weight") is not None
                if not affine and not isinstance(call.module, _BatchNorm):
                    continue  # a norm with no affine weight: nothing initialised
                kind = type(call.module).__name__
                kind = "BatchNorm" if isinstance(call.module, _BatchNorm) else kind
                norm_kinds[kind] = norm_kinds.get(kind, 0) + 1
                problems = _batchnorm_problems(call.module)
            else:
                original = _spectral_weight(call.module)
                weight = (_tensor(call.module, "weight") if original is None
                          else original.detach().float())
                if weight is None:
                    continue
                n_weights += 1
                n_spectral += original is not None
                problems = _weight_problems(weight)
            if problems:
                offenders.append(f"{call.label}: {', '.join(problems)}")
    before = f" ({n_spectral} before spectral normalization)" if n_spectral else ""
    ordered = sorted(norm_kinds.items(), key=lambda item: item[0] != "BatchNorm")
    norms_found = ", ".join(f"{count} {kind}" for kind, count in ordered)
    return offenders, (
        f"{n_weights} weight tensor(s) ~ N(0, 0.02){before}; "
        + (f"{norms_found} layer(s) ~ N(1, 0.02) with zero bias" if norm_kinds
           else "0 BatchNorm layer(s) ~ N(1, 0.02) with zero bias")
    )


@attrs.frozen
class _Rule:
    """One guideline: its name, the networks it judges, its check."""

    guideline: str
    networks: tuple[str, ...]
    check: Callable[[_Role, _Structure], _Verdict]
    min_layers: int = 0  # weight layers needed to tell the input and output layers apart


_RULES: tuple[_Rule, ...] = (
    _Rule("no pooling", _BOTH, _no_pooling),
    _Rule("strided convolutions", _BOTH, _strides),
    _Rule("batchnorm", _BOTH, _batchnorm, min_layers=2),
    _Rule("no fully connected hidden layers", _BOTH, _fully_connected, min_layers=2),
    _Rule("activations", _BOTH, _activations, min_layers=2),
    _Rule("init N(0, 0.02)", _BOTH, _init),
)

GUIDELINES: tuple[str, ...] = tuple(rule.guideline for rule in _RULES)
"""Guideline names, in the order each network's results are reported."""


def _run(role: _Role, network: nn.Module, inputs: torch.Tensor,
         labels: torch.Tensor | None) -> list[AuditResult]:
    """Trace ``network`` on ``inputs`` (and ``labels``) once and run every rule that judges
    ``role``."""
    if is_conditional(network) and labels is None:
        raise ValueError(f"the {role.network} is conditional: audit it with class labels")
    structure = _group(_trace(network, inputs, labels))
    results = []
    for rule in _RULES:
        if role.network not in rule.networks:
            continue
        count = len(structure.layers)
        if count < rule.min_layers:
            offenders, ok = [
                f"found {count} weight layer(s) (Conv/ConvTranspose/Linear); at least "
                f"{rule.min_layers} are needed to tell the input and output layers from the "
                "hidden layers"
            ], ""
        else:
            offenders, ok = rule.check(role, structure)
        detail = "; ".join(dict.fromkeys(offenders)) or ok
        results.append(AuditResult(role.network, rule.guideline, not offenders, detail, AUDITOR))
    return results


def audit_generator(generator: nn.Module, z: torch.Tensor,
                    labels: torch.Tensor | None = None) -> list[AuditResult]:
    """Audit a generator against the DCGAN guidelines.

    Args:
        generator: Any ``nn.Module``; it is traced with one eval-mode, no-grad forward pass
            on ``z`` and left exactly as found (training flags, buffers, parameters, hooks).
        z: A latent batch the generator accepts, on the generator's device.
        labels: Class labels for a conditional generator (traced as ``generator(z,
            labels)``); required when it is conditional, else leave None.

    Returns:
        One result per guideline, in :data:`GUIDELINES` order, all with
        ``network == "generator"`` and ``auditor ==`` :data:`AUDITOR`.
    """
    return _run(_G, generator, z, labels)


def audit_discriminator(discriminator: nn.Module, images: torch.Tensor,
                        labels: torch.Tensor | None = None) -> list[AuditResult]:
    """Audit a discriminator against the DCGAN guidelines.

    Args:
        discriminator: Any ``nn.Module``; it is traced with one eval-mode, no-grad forward
            pass on ``images`` and left exactly as found.
        images: An image batch the discriminator accepts, on its device.
        labels: Class labels for a conditional discriminator (traced as
            ``discriminator(images, labels)``); required when it is conditional, else
            leave None.

    Returns:
        One result per guideline, in :data:`GUIDELINES` order, all with
        ``network == "discriminator"`` and ``auditor ==`` :data:`AUDITOR`.
    """
    return _run(_D, discriminator, images, labels)


def audit(
    generator: nn.Module,
    discriminator: nn.Module,
    z: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> list[AuditResult]:
    """Audit both networks; the generator's results come first, then the discriminator's.

    Args:
        generator: The generator, traced on ``z``.
        discriminator: The discriminator, traced on ``images``.
        z: A latent batch for the generator.
        images: An image batch for the discriminator.
        labels: Class labels (int64, shape ``(N,)``), passed to whichever network is
            conditional; None when neither is.

    Returns:
        Twelve results: :func:`audit_generator` followed by :func:`audit_discriminator`.
    """
    g_labels = labels if is_conditional(generator) else None
    d_labels = labels if is_conditional(discriminator) else None
    return (audit_generator(generator, z, g_labels)
            + audit_discriminator(discriminator, images, d_labels))
