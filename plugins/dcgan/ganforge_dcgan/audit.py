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

The audit is structure-agnostic: it traces the real execution order of the leaf modules
of *any* ``nn.Module`` tree with forward hooks during a single forward pass, groups the
traced leaves into layers (a weight layer plus the norms and activations executed after
it) and checks those layers. The network is left exactly as it was found: training flags
are restored, hooks are removed and, since the pass runs in eval mode under
``torch.no_grad()``, BatchNorm running statistics and parameters are untouched.

Activations applied functionally (``torch.relu(x)`` inside ``forward``) are invisible to
module hooks and are therefore reported as missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import attrs
import torch
from torch import nn
from torch.nn.modules import activation as _activation_module
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import UninitializedParameter

__all__ = [
    "GUIDELINES",
    "GuidelineResult",
    "audit",
    "audit_discriminator",
    "audit_generator",
]

_GENERATOR = "generator"
_DISCRIMINATOR = "discriminator"

_NO_POOLING = "no pooling"
_STRIDED = "strided convolutions"
_BATCHNORM = "batchnorm"
_NO_FC = "no fully connected hidden layers"
_ACTIVATIONS = "activations"
_INIT = "init N(0, 0.02)"

GUIDELINES: tuple[str, ...] = (_NO_POOLING, _STRIDED, _BATCHNORM, _NO_FC, _ACTIVATIONS, _INIT)
"""Guideline names, in the order each network's results are reported."""

_INIT_STD = 0.02
_INIT_STD_RANGE = (0.015, 0.025)
_BN_MAX_STD = 0.05
_MIN_MEAN_TOLERANCE = 0.01
_ZERO_TOLERANCE = 1e-6
_LEAKY_SLOPE = 0.2


def _nn_types(*names: str) -> tuple[type[nn.Module], ...]:
    """Return the ``torch.nn`` classes among ``names`` that this torch version provides."""
    return tuple(getattr(nn, name) for name in names if hasattr(nn, name))


_CONV_TYPES = _nn_types("Conv1d", "Conv2d", "Conv3d")
_CONV_TRANSPOSE_TYPES = _nn_types("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
_WEIGHT_TYPES = (*_CONV_TYPES, *_CONV_TRANSPOSE_TYPES, nn.Linear)
_POOL_TYPES = _nn_types(
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "FractionalMaxPool2d", "FractionalMaxPool3d",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
)  # fmt: skip
_UPSAMPLE_TYPES = _nn_types("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
_RESAMPLE_TYPES = (*_POOL_TYPES, *_UPSAMPLE_TYPES)
_NOOP_TYPES = _nn_types(
    "Identity", "Flatten", "Unflatten",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
)  # fmt: skip
_OTHER_NORM_TYPES = _nn_types(
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm",
)  # fmt: skip
_ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(
    obj
    for obj in (getattr(_activation_module, name) for name in _activation_module.__all__)
    if isinstance(obj, type) and issubclass(obj, nn.Module) and obj is not nn.MultiheadAttention
)
_TRACE_AS_LEAF = (
    *_WEIGHT_TYPES,
    *_RESAMPLE_TYPES,
    *_NOOP_TYPES,
    _BatchNorm,
    *_OTHER_NORM_TYPES,
    *_ACTIVATION_TYPES,
)


@attrs.frozen
class GuidelineResult:
    """Outcome of one DCGAN guideline check on one network.

    Attributes:
        network: ``"generator"`` or ``"discriminator"``.
        guideline: Short human-readable guideline name, one of :data:`GUIDELINES`.
        passed: Whether the network follows the guideline.
        detail: On failure, every offending layer named by its ``named_modules()`` path and
            class (e.g. ``"main.3 (ConvTranspose2d) has no BatchNorm"``), joined with
            ``"; "``; on success, a short confirmation.
    """

    network: str = attrs.field(validator=attrs.validators.in_((_GENERATOR, _DISCRIMINATOR)))
    guideline: str
    passed: bool
    detail: str


@attrs.frozen
class _Call:
    """One traced execution of a leaf module."""

    path: str
    module: nn.Module

    @property
    def label(self) -> str:
        """``"path (ClassName)"``, the way offenders are named in details."""
        return f"{self.path or '<root>'} ({type(self.module).__name__})"


@attrs.define
class _Layer:
    """A weight layer and the norm / activation modules executed after it."""

    weight: _Call
    batchnorms: list[_Call] = attrs.field(factory=list)
    other_norms: list[_Call] = attrs.field(factory=list)
    activations: list[_Call] = attrs.field(factory=list)

    @property
    def label(self) -> str:
        """Label of the layer's weight module."""
        return self.weight.label


@attrs.frozen
class _Structure:
    """The traced network: its layers in execution order and any resampling modules."""

    layers: tuple[_Layer, ...]
    resamplers: tuple[_Call, ...]


def _traced_leaves(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules to hook: leaves, plus known layer types even if they have children.

    Known layer types (a Conv with ``torch.nn.utils.parametrize`` children, for example)
    are traced as a whole and their descendants are skipped.
    """
    selected: list[tuple[str, nn.Module]] = []
    prefixes: list[str] = []
    for path, module in network.named_modules():
        if any(path.startswith(prefix) for prefix in prefixes):
            continue
        if isinstance(module, _TRACE_AS_LEAF) or next(module.children(), None) is None:
            selected.append((path, module))
            prefixes.append(f"{path}." if path else "")
    return selected


def _make_hook(calls: list[_Call], path: str) -> Callable[[nn.Module, object, object], None]:
    def hook(module: nn.Module, _args: object, _output: object) -> None:
        calls.append(_Call(path, module))

    return hook


def _trace(network: nn.Module, inputs: torch.Tensor) -> list[_Call]:
    """Run one eval-mode, no-grad forward pass and return the leaf calls in order.

    Every module's training flag is restored and every hook removed afterwards, even if
    the forward pass raises.
    """
    calls: list[_Call] = []
    flags = [(module, module.training) for module in network.modules()]
    handles = []
    try:
        for path, module in _traced_leaves(network):
            handles.append(module.register_forward_hook(_make_hook(calls, path)))
        network.eval()
        with torch.no_grad():
            network(inputs)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags:
            module.training = flag
    return calls


def _group(calls: Iterable[_Call]) -> _Structure:
    """Group traced leaf calls into weight layers; collect pooling / upsampling calls."""
    layers: list[_Layer] = []
    resamplers: list[_Call] = []
    for call in calls:
        module = call.module
        if isinstance(module, _WEIGHT_TYPES):
            layers.append(_Layer(call))
        elif isinstance(module, _RESAMPLE_TYPES):
            resamplers.append(call)
        elif isinstance(module, _NOOP_TYPES) or not layers:
            continue
        elif isinstance(module, _BatchNorm):
            layers[-1].batchnorms.append(call)
        elif isinstance(module, _OTHER_NORM_TYPES):
            layers[-1].other_norms.append(call)
        elif isinstance(module, _ACTIVATION_TYPES):
            layers[-1].activations.append(call)
    return _Structure(tuple(layers), tuple(resamplers))


def _result(network: str, guideline: str, offenders: list[str], ok: str) -> GuidelineResult:
    if offenders:
        unique = list(dict.fromkeys(offenders))
        return GuidelineResult(network, guideline, False, "; ".join(unique))
    return GuidelineResult(network, guideline, True, ok)


def _too_few_layers(network: str, guideline: str, count: int) -> GuidelineResult:
    return GuidelineResult(
        network,
        guideline,
        False,
        f"found {count} weight layer(s) (Conv/ConvTranspose/Linear); at least 2 are needed "
        "to tell the input and output layers from the hidden layers",
    )


def _max_stride(module: nn.Module) -> int:
    stride = getattr(module, "stride", 1)
    return max(stride) if isinstance(stride, tuple) else int(stride)


def _is_pool(call: _Call) -> bool:
    return isinstance(call.module, _POOL_TYPES)


def _check_no_pooling(network: str, structure: _Structure) -> GuidelineResult:
    offenders = [
        f"{call.label} is a pooling layer"
        if _is_pool(call)
        else f"{call.label} is an interpolation upsampling layer"
        for call in structure.resamplers
    ]
    return _result(network, _NO_POOLING, offenders, "no pooling or interpolation layers")


def _check_generator_strides(structure: _Structure) -> GuidelineResult:
    strided = [
        layer
        for layer in structure.layers
        if isinstance(layer.weight.module, _CONV_TRANSPOSE_TYPES)
        and _max_stride(layer.weight.module) > 1
    ]
    offenders = []
    if not strided:
        offenders.append("no ConvTranspose with stride > 1; G must upsample with it")
    offenders += [
        f"{call.label} {'unpools' if _is_pool(call) else 'upsamples by interpolation'} "
        "instead of a strided ConvTranspose"
        for call in structure.resamplers
    ]
    ok = f"upsamples with {len(strided)} strided ConvTranspose layer(s)"
    return _result(_GENERATOR, _STRIDED, offenders, ok)


def _check_discriminator_strides(structure: _Structure) -> GuidelineResult:
    strided = [
        layer
        for layer in structure.layers
        if isinstance(layer.weight.module, _CONV_TYPES) and _max_stride(layer.weight.module) > 1
    ]
    offenders = []
    if not strided:
        offenders.append("no Conv with stride > 1; D must downsample with it")
    offenders += [
        f"{call.label} {'pools' if _is_pool(call) else 'resamples by interpolation'} "
        "instead of a strided convolution"
        for call in structure.resamplers
    ]
    ok = f"downsamples with {len(strided)} strided convolution(s)"
    return _result(_DISCRIMINATOR, _STRIDED, offenders, ok)


def _missing_batchnorm(layer: _Layer) -> str:
    message = f"{layer.label} has no BatchNorm"
    if layer.other_norms:
        others = ", ".join(call.label for call in layer.other_norms)
        message += f" ({others} is not BatchNorm)"
    return message


def _check_generator_batchnorm(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_GENERATOR, _BATCHNORM, len(layers))
    body, output = layers[:-1], layers[-1]
    offenders = [_missing_batchnorm(layer) for layer in body if not layer.batchnorms]
    offenders += [
        f"{norm.label} follows the output layer {output.label}; G's output layer must not "
        "have BatchNorm"
        for norm in output.batchnorms
    ]
    ok = f"{len(body)} of {len(body)} layers before the output have BatchNorm; output has none"
    return _result(_GENERATOR, _BATCHNORM, offenders, ok)


def _check_discriminator_batchnorm(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_DISCRIMINATOR, _BATCHNORM, len(layers))
    first, hidden = layers[0], layers[1:-1]
    offenders = [
        f"{norm.label} follows the input layer {first.label}; D's input layer must not have "
        "BatchNorm"
        for norm in first.batchnorms
    ]
    offenders += [_missing_batchnorm(layer) for layer in hidden if not layer.batchnorms]
    ok = f"{len(hidden)} of {len(hidden)} hidden layers have BatchNorm; input layer has none"
    return _result(_DISCRIMINATOR, _BATCHNORM, offenders, ok)


def _check_generator_fc(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_GENERATOR, _NO_FC, len(layers))
    offenders = [
        f"{layer.label} is a fully connected "
        f"{'output' if index == len(layers) - 1 else 'hidden'} layer; only G's first layer "
        "(the z projection) may be Linear"
        for index, layer in enumerate(layers)
        if index > 0 and isinstance(layer.weight.module, nn.Linear)
    ]
    if isinstance(layers[0].weight.module, nn.Linear):
        ok = "only the first layer (z projection) is Linear"
    else:
        ok = "no Linear layers"
    return _result(_GENERATOR, _NO_FC, offenders, ok)


def _check_discriminator_fc(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_DISCRIMINATOR, _NO_FC, len(layers))
    offenders = [
        f"{layer.label} is a fully connected hidden layer; only D's last layer (the logit) "
        "may be Linear"
        for layer in layers[:-1]
        if isinstance(layer.weight.module, nn.Linear)
    ]
    if isinstance(layers[-1].weight.module, nn.Linear):
        ok = "only the last layer (logit) is Linear"
    else:
        ok = "no Linear layers"
    return _result(_DISCRIMINATOR, _NO_FC, offenders, ok)


def _check_generator_activations(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_GENERATOR, _ACTIVATIONS, len(layers))
    body, output = layers[:-1], layers[-1]
    offenders: list[str] = []
    for layer in body:
        if not layer.activations:
            offenders.append(f"{layer.label} has no activation, expected ReLU")
        offenders += [
            f"{act.label} after {layer.label} should be ReLU"
            for act in layer.activations
            if not isinstance(act.module, nn.ReLU)
        ]
    if not output.activations:
        offenders.append(f"output layer {output.label} has no activation, expected Tanh")
    offenders += [
        f"{act.label} after the output layer {output.label} should be Tanh"
        for act in output.activations
        if not isinstance(act.module, nn.Tanh)
    ]
    ok = f"ReLU after {len(body)} of {len(body)} layers before the output; Tanh on the output"
    return _result(_GENERATOR, _ACTIVATIONS, offenders, ok)


def _leaky_relu_problem(act: _Call, layer: _Layer) -> str | None:
    module = act.module
    if not isinstance(module, nn.LeakyReLU):
        return f"{act.label} after {layer.label} should be LeakyReLU(0.2)"
    slope = float(module.negative_slope)
    if not math.isclose(slope, _LEAKY_SLOPE, rel_tol=1e-6):
        return f"{act.label} after {layer.label} has negative_slope={slope:g}, expected 0.2"
    return None


def _check_discriminator_activations(structure: _Structure) -> GuidelineResult:
    layers = structure.layers
    if len(layers) < 2:
        return _too_few_layers(_DISCRIMINATOR, _ACTIVATIONS, len(layers))
    body, logit = layers[:-1], layers[-1]
    offenders: list[str] = []
    for layer in body:
        if not layer.activations:
            offenders.append(f"{layer.label} has no activation, expected LeakyReLU(0.2)")
        for act in layer.activations:
            problem = _leaky_relu_problem(act, layer)
            if problem is not None:
                offenders.append(problem)
    for act in logit.activations:
        if isinstance(act.module, nn.Sigmoid):
            offenders.append(
                f"{act.label} after the logit layer {logit.label}: the sigmoid belongs to the "
                "loss (BCEWithLogitsLoss); D must output raw logits"
            )
        else:
            offenders.append(
                f"{act.label} after the logit layer {logit.label}: D must output raw logits "
                "with no activation"
            )
    ok = (
        f"LeakyReLU(0.2) after {len(body)} of {len(body)} layers before the logit layer; "
        "raw logits out"
    )
    return _result(_DISCRIMINATOR, _ACTIVATIONS, offenders, ok)


def _tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """Return a usable (initialised, non-empty) parameter ``name`` of ``module``, if any."""
    value = getattr(module, name, None)
    if not isinstance(value, torch.Tensor) or isinstance(value, UninitializedParameter):
        return None
    if value.numel() == 0:
        return None
    return value.detach().float()


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


def _check_init(network: str, structure: _Structure) -> GuidelineResult:
    if not structure.layers:
        return GuidelineResult(
            network, _INIT, False, "no weight layers (Conv/ConvTranspose/Linear) were executed"
        )
    seen: set[int] = set()
    offenders: list[str] = []
    n_weights = n_norms = 0
    for layer in structure.layers:
        for call, is_norm in [(layer.weight, False)] + [(n, True) for n in layer.batchnorms]:
            if id(call.module) in seen:
                continue
            seen.add(id(call.module))
            if is_norm:
                n_norms += 1
                problems = _batchnorm_problems(call.module)
            else:
                weight = _tensor(call.module, "weight")
                if weight is None:
                    continue
                n_weights += 1
                problems = _weight_problems(weight)
            if problems:
                offenders.append(f"{call.label}: {', '.join(problems)}")
    ok = (
        f"{n_weights} weight tensor(s) ~ N(0, 0.02); "
        f"{n_norms} BatchNorm layer(s) ~ N(1, 0.02) with zero bias"
    )
    return _result(network, _INIT, offenders, ok)


def audit_generator(generator: nn.Module, z: torch.Tensor) -> list[GuidelineResult]:
    """Audit a generator against the DCGAN guidelines.

    Args:
        generator: Any ``nn.Module``; it is traced with one eval-mode, no-grad forward pass
            on ``z`` and left exactly as found (training flags, buffers, parameters, hooks).
        z: A latent batch the generator accepts, on the generator's device.

    Returns:
        One result per guideline, in :data:`GUIDELINES` order, all with
        ``network == "generator"``.
    """
    structure = _group(_trace(generator, z))
    return [
        _check_no_pooling(_GENERATOR, structure),
        _check_generator_strides(structure),
        _check_generator_batchnorm(structure),
        _check_generator_fc(structure),
        _check_generator_activations(structure),
        _check_init(_GENERATOR, structure),
    ]


def audit_discriminator(discriminator: nn.Module, images: torch.Tensor) -> list[GuidelineResult]:
    """Audit a discriminator against the DCGAN guidelines.

    Args:
        discriminator: Any ``nn.Module``; it is traced with one eval-mode, no-grad forward
            pass on ``images`` and left exactly as found.
        images: An image batch the discriminator accepts, on its device.

    Returns:
        One result per guideline, in :data:`GUIDELINES` order, all with
        ``network == "discriminator"``.
    """
    structure = _group(_trace(discriminator, images))
    return [
        _check_no_pooling(_DISCRIMINATOR, structure),
        _check_discriminator_strides(structure),
        _check_discriminator_batchnorm(structure),
        _check_discriminator_fc(structure),
        _check_discriminator_activations(structure),
        _check_init(_DISCRIMINATOR, structure),
    ]


def audit(
    generator: nn.Module,
    discriminator: nn.Module,
    z: torch.Tensor,
    images: torch.Tensor,
) -> list[GuidelineResult]:
    """Audit both networks; the generator's results come first, then the discriminator's.

    Args:
        generator: The generator, traced on ``z``.
        discriminator: The discriminator, traced on ``images``.
        z: A latent batch for the generator.
        images: An image batch for the discriminator.

    Returns:
        Twelve results: :func:`audit_generator` followed by :func:`audit_discriminator`.
    """
    return audit_generator(generator, z) + audit_discriminator(discriminator, images)
