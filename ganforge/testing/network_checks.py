"""Checks of generators and discriminators: the image shapes they build for, output
shapes and ranges, latents, labels, bf16 autocast, channels_last, ``torch.compile``,
seeded initialisation and ``state_dict`` round trips."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import GanforgeError
from ..core.interfaces import ImageSpec, is_conditional
from .report import SkipCheck, fail, one_line

#: Images per batch in the network checks (more than 1: BatchNorm in training mode).
BATCH = 4
#: Classes of the specs networks are built for (a conditional network needs some).
CLASSES = 3
#: Tolerances of the "same result" comparisons (channels_last, compile, labels).
ATOL, RTOL = 1e-5, 1e-4
#: The class attribute with which a network opts out of the compile check.
COMPILE_OPT_OUT = "supports_compile"


@attrs.define
class Built:
    """A network built for one spec."""

    spec: ImageSpec
    network: nn.Module


def describe_spec(spec: ImageSpec, network: Any = None) -> str:
    """``3x32x32``, and the classes when there are some and ``network`` (if given) is
    conditional."""
    c, s = spec.channels, spec.size
    shown = spec.classes and (network is None or is_conditional(network))
    return f"{c}x{s}x{s}" + (f" ({spec.classes} classes)" if shown else "")


def build(cls: type, params: Any, spec: ImageSpec, seed: int | None = None) -> nn.Module:
    """``cls(params, image_spec=spec)``, after ``torch.manual_seed(seed)`` when given."""
    if seed is not None:
        torch.manual_seed(seed)
    return cls(params, image_spec=spec)


def check_specs(cls: type, params: Any, sizes: Iterable[int], channels: Iterable[int],
                classes: int) -> list[Built]:
    """Build for every size x channel count; keep those built. A refusal must be a
    ganforge error or ``ValueError`` with a one-line message; at least one must build."""
    built: list[Built] = []
    problems: list[str] = []
    for size in sizes:
        for chans in channels:
            spec = ImageSpec(channels=chans, size=size, classes=classes)
            try:
                network = build(cls, params, spec, seed=0)
            except (GanforgeError, ValueError) as error:
                lines = str(error).strip().splitlines()
                if len(lines) != 1:
                    problems.append(f"refused {describe_spec(spec)} with a message of "
                                    f"{len(lines)} lines (one line is the rule)")
                continue
            except Exception as error:
                problems.append(f"building for {describe_spec(spec)} crashed with "
                                f"{one_line(error)} (refuse a spec with a UsageError, "
                                "RecipeError or ValueError)")
                continue
            built.append(Built(spec, network))
    if problems:
        raise fail("; ".join(problems))
    if not built:
        tried = ", ".join(f"{c}x{s}x{s}" for s in sizes for c in channels)
        raise fail(f"built for none of the image specs tried ({tried}); pass sizes= or "
                   "channels= that it accepts")
    return built


def primary(built: list[Built]) -> Built:
    """The spec the other checks use: the smallest size, 3 channels when accepted."""
    return min(built, key=lambda b: (b.spec.size, b.spec.channels != 3, b.spec.channels))


def labels_for(network: nn.Module, spec: ImageSpec, n: int = BATCH) -> torch.Tensor | None:
    """Class indices ``0, 1, ...`` for a conditional network, else None."""
    if not is_conditional(network):
        return None
    return torch.arange(n, dtype=torch.int64) % max(spec.classes, 1)


def inputs(kind: str, network: Any, spec: ImageSpec, seed: int = 0,
           n: int = BATCH) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Seeded inputs: latents (generator) or images in [-1, 1] (discriminator), and labels
    when the network is conditional."""
    rng = torch.Generator().manual_seed(seed)
    if kind == "generator":
        x = network.sample_latent(n, rng, "cpu")
    else:
        x = torch.rand((n, *spec.shape()), generator=rng) * 2 - 1
    return x, labels_for(network, spec, n)


def forward(network: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> Any:
    """``network(x, y)`` for a conditional network, ``network(x)`` otherwise."""
    return network(x) if y is None else network(x, y)


def _expect_output(kind: str, out: Any, spec: ImageSpec, n: int, where: str,
                   range_tolerance: float = 0.0, network: Any = None) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise fail(f"{where}: returned {type(out).__name__}, not a tensor")
    head = getattr(network, "aux_classifier", False) is True
    expected: tuple[int, ...] = (n, *spec.shape()) if kind == "generator" \
        else (n, 1 + spec.classes) if head else (n,)
    if tuple(out.shape) != expected:
        raise fail(f"{where}: output shape {tuple(out.shape)}, expected {expected}"
                   + (" (one logit per image: flatten the last layer's output)"
                      if kind == "discriminator" else ""))
    if not out.is_floating_point():
        raise fail(f"{where}: output dtype {out.dtype}, expected a float tensor")
    if not bool(torch.isfinite(out).all()):
        raise fail(f"{where}: output has non-finite values")
    if kind == "generator":
        low, high = float(out.detach().min()), float(out.detach().max())
        if low < -1 - range_tolerance or high > 1 + range_tolerance:
            raise fail(f"{where}: images leave [-1, 1] (min {low:.4g}, max {high:.4g}); end "
                       "with Tanh or clamp")
    return out


def check_output(kind: str, built: list[Built]) -> None:
    """For every spec built: G gives ``(N, C, S, S)`` float images in [-1, 1] and has
    ``image_spec`` equal to it; D gives ``(N,)`` finite logits; in train and eval mode."""
    for item in built:
        network, spec = item.network, item.spec
        for mode in ("train", "eval"):
            network.train(mode == "train")
            x, y = inputs(kind, network, spec)
            with torch.no_grad():
                out = forward(network, x, y)
            _expect_output(kind, out, spec, BATCH,
                           f"{describe_spec(spec, network)}, {mode} mode", network=network)
        network.train()
        if kind == "generator":
            got = network.image_spec
            if not isinstance(got, ImageSpec) or not got.same_images(spec):
                raise fail(f"image_spec is {got!r} for a network built for "
                           f"{describe_spec(spec, network)}")


def check_latent(item: Built) -> None:
    """``latent_dim`` is a positive int; ``sample_latent`` gives ``n`` latents, the same
    for the same seed, others for another seed, on the device asked for (default: the
    torch.Generator's)."""
    network: Any = item.network
    dim = network.latent_dim
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise fail(f"latent_dim is {dim!r}, not a positive int")

    def draw(seed: int, n: int = 5, **device: Any) -> torch.Tensor:
        z = network.sample_latent(n, torch.Generator().manual_seed(seed), **device)
        if not isinstance(z, torch.Tensor) or z.shape[0] != n:
            raise fail(f"sample_latent({n}, ...) gave "
                       f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z)}, "
                       f"not {n} latents")
        return z

    a, b = draw(7, device="cpu"), draw(7, device="cpu")
    if not torch.equal(a, b):
        raise fail("sample_latent gave different latents for the same seeded "
                   "torch.Generator (draw every random number from it)")
    if torch.equal(a, draw(8, device="cpu")):
        raise fail("sample_latent gave the same latents for different seeds")
    if not torch.equal(a, draw(7)):
        raise fail("sample_latent without a device gave other latents than with "
                   "device='cpu' (default to the torch.Generator's device)")
    if not bool(torch.isfinite(a).all()):
        raise fail("sample_latent gave non-finite values")


def check_labels(kind: str, item: Built) -> None:
    """A conditional network takes int64 class indices (and a conditional G float one-hot
    weights, giving the same images); an unconditional one is called without labels
    (checked by ``output``)."""
    network, spec = item.network, item.spec
    if not is_conditional(network):
        raise SkipCheck("unconditional: called without labels (see output)")
    network.eval()
    try:
        x, y = inputs(kind, network, spec)
        assert y is not None
        with torch.no_grad():
            by_index = _expect_output(kind, forward(network, x, y), spec, BATCH,
                                      "with int64 labels", network=network)
            if kind == "generator":
                weights = F.one_hot(y, spec.classes).float()
                by_weight = _expect_output(kind, network(x, weights), spec, BATCH,
                                           "with one-hot float labels")
                if not torch.allclose(by_index, by_weight, atol=ATOL, rtol=RTOL):
                    raise fail("one-hot float class weights give other images than the "
                               "same int64 class indices")
    finally:
        network.train()


def check_bf16(kind: str, item: Built) -> None:
    """Forward and backward under CPU bfloat16 autocast give finite outputs and
    gradients of the right shape."""
    network, spec = copy.deepcopy(item.network), item.spec
    network.train()
    x, y = inputs(kind, network, spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = forward(network, x, y)
        _expect_output(kind, out, spec, BATCH, "under bf16 autocast", range_tolerance=1e-2,
                       network=network)
        loss = out.float().square().mean()
    loss.backward()
    bad = [n for n, p in network.named_parameters()
           if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    if bad:
        raise fail(f"non-finite gradients under bf16 autocast: {', '.join(bad[:5])}")


def _compare(what: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise fail(f"{what}: shape {tuple(b.shape)} instead of {tuple(a.shape)}")
    if not torch.allclose(a.float(), b.float(), atol=ATOL, rtol=RTOL):
        diff = float((a.float() - b.float()).abs().max())
        raise fail(f"{what}: outputs differ (max abs difference {diff:.3g})")


def _grads(network: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in network.named_parameters() if p.grad is not None}


def _train_step_outputs(kind: str, network: nn.Module, spec: ImageSpec,
                        memory_format: torch.memory_format | None = None,
                        wrap: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and gradients of one training-mode forward/backward of ``network``."""
    x, y = inputs(kind, network, spec)
    if memory_format is not None and x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    called = wrap if wrap is not None else network
    out = forward(called, x, y)
    out.float().square().mean().backward()
    return out.detach(), _grads(network)


def _same_training(kind: str, item: Built, what: str, prepare: Any,
                   memory_format: torch.memory_format | None = None) -> None:
    """The reference network and a prepared copy give the same outputs and gradients in
    train mode, and the same outputs in eval mode."""
    reference, other = copy.deepcopy(item.network), copy.deepcopy(item.network)
    reference.train(), other.train()
    called = prepare(other)
    out_a, grads_a = _train_step_outputs(kind, reference, item.spec)
    out_b, grads_b = _train_step_outputs(kind, other, item.spec, memory_format, called)
    _compare(f"{what}, train mode", out_a, out_b)
    if grads_a.keys() != grads_b.keys():
        raise fail(f"{what}: other parameters get gradients")
    for name, grad in grads_a.items():
        _compare(f"{what}, gradient of {name}", grad, grads_b[name])
    reference.eval(), other.eval()
    x, y = inputs(kind, reference, item.spec, seed=1)
    with torch.no_grad():
        out_a = forward(reference, x, y)
        if memory_format is not None and x.dim() == 4:
            x = x.contiguous(memory_format=memory_format)
        out_b = forward(called, x, y)
    _compare(f"{what}, eval mode", out_a, out_b)


def check_channels_last(kind: str, item: Built) -> None:
    """Converted with ``.to(memory_format=torch.channels_last)`` (as the trainer does) and
    fed channels_last images, the network gives the same outputs and gradients."""
    _same_training(kind, item, "channels_last",
                   lambda net: net.to(memory_format=torch.channels_last),
                   memory_format=torch.channels_last)


def check_compile(kind: str, item: Built, backend: str) -> None:
    """``torch.compile(network, backend=backend)`` gives the same outputs and gradients,
    unless the class sets ``supports_compile = False``."""
    if getattr(item.network, COMPILE_OPT_OUT, True) is False:
        raise SkipCheck(f"{type(item.network).__name__} declares {COMPILE_OPT_OUT} = False")
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise SkipCheck("torch.compile is not supported in this Python/torch")
    torch._dynamo.reset()
    try:
        _same_training(kind, item, f"torch.compile (backend {backend!r})",
                       lambda net: torch.compile(net, backend=backend))
    finally:
        torch._dynamo.reset()


def check_determinism(cls: type, params: Any, spec: ImageSpec) -> None:
    """Two builds after ``torch.manual_seed(s)`` have identical weights and buffers."""
    a = build(cls, params, spec, seed=1234).state_dict()
    b = build(cls, params, spec, seed=1234).state_dict()
    if a.keys() != b.keys():
        raise fail("two builds have different state_dict keys")
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    if differ:
        raise fail(f"two builds after torch.manual_seed(1234) differ in {', '.join(differ[:5])}"
                   " (draw initial weights from torch's global generator only)")


def check_state_dict(kind: str, cls: type, params: Any, spec: ImageSpec) -> None:
    """A network built from another seed, loaded (strictly) with a network's
    ``state_dict``, holds the same tensors and gives the same outputs."""
    a = build(cls, params, spec, seed=1)
    b = build(cls, params, spec, seed=2)
    state = a.state_dict()
    b.load_state_dict(state)
    again = b.state_dict()
    differ = [k for k in state if k not in again or not torch.equal(state[k], again[k])]
    if differ or again.keys() != state.keys():
        raise fail(f"load_state_dict(state_dict()) changed {', '.join(differ[:5]) or 'keys'}")
    a.eval(), b.eval()
    x, y = inputs(kind, a, spec)
    with torch.no_grad():
        _compare("after load_state_dict", forward(a, x, y), forward(b, x, y))


def check_gradients(kind: str, item: Built) -> None:
    """A training-mode backward reaches every parameter (an unused parameter breaks
    DistributedDataParallel) with finite gradients."""
    network = copy.deepcopy(item.network)
    network.train()
    _, grads = _train_step_outputs(kind, network, item.spec)
    missing = [n for n, p in network.named_parameters() if p.requires_grad and n not in grads]
    if missing:
        raise fail(f"parameters get no gradient: {', '.join(missing[:5])} (unused parameters "
                   "break DistributedDataParallel)")
    bad = [n for n, g in grads.items() if not bool(torch.isfinite(g).all())]
    if bad:
        raise fail(f"non-finite gradients: {', '.join(bad[:5])}")
