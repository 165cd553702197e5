"""Bounds on what building a network from an untrusted description allocates: a
checkpoint's embedded recipe or an exported folder's ``config.json`` may ask for a network
far larger than the file holds, or one whose single sample needs gigabytes.

Everything here runs on the ``meta`` device, where tensors have shapes but no memory, and
before the real network is built. The checks never pass by default: a network that cannot
be built on ``meta`` (an overflowing size, a plugin that does not support it), and a
forward pass that fails there, are refusals like a network that is too large. Each
refusal is one :class:`~ganforge.core.errors.CheckpointError` line naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..core.errors import GanforgeError
from ..core.interfaces import Generator, is_conditional
from ..io.refusals import refusal
from ..io.safetensors_read import TensorInfo
from .checkpoint_checks import check_module_layout

#: Most values (parameters and buffers) one network may hold: 8 GiB in float32, far above
#: any GAN (BigGAN's G holds about 70 million).
MAX_NETWORK_ELEMENTS = 2**31
#: Most values the outputs of G's layers may hold for one sample (4 GiB in float32; a
#: 1024 x 1024 StyleGAN2 G needs about a tenth of it).
MAX_SAMPLE_ELEMENTS = 2**30
#: Characters of an exception's message shown in a refusal.
_SHOWN = 200

T = TypeVar("T")


def _reason(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0].strip()
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def built_on_meta(build: Callable[[], T], source: Path | str, what: str = "its networks"
                  ) -> T:
    """``build()``, which builds on the ``meta`` device; any failure but a ganforge error
    of its own (a recipe problem) is a refusal, never a reason to skip the checks."""
    try:
        return build()
    except GanforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever fails, the size stays unchecked
        raise refusal(source, f"cannot check the size of {what} before building them "
                              f"(building on the meta device failed: {_reason(exc)})") from None


def check_network_size(module: torch.nn.Module, what: str, source: Path | str) -> None:
    """Refuse a network (on ``meta``) holding more than :data:`MAX_NETWORK_ELEMENTS`
    values."""
    count = sum(math.prod(t.shape) for t in module.state_dict().values()
                if isinstance(t, torch.Tensor))
    if count > MAX_NETWORK_ELEMENTS:
        raise refusal(source, f"{what} would hold {count} values, over the limit of "
                              f"{MAX_NETWORK_ELEMENTS}")


def check_sample_size(generator: Generator, source: Path | str) -> None:
    """Run ``generator`` (on ``meta``, put in eval mode) on one latent and refuse it when
    the outputs of its layers hold more than :data:`MAX_SAMPLE_ELEMENTS` values; a forward
    pass that fails on ``meta`` is refused too."""
    total = 0

    def count(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        outputs = output if isinstance(output, tuple | list) else (output,)
        total += sum(math.prod(o.shape) for o in outputs if isinstance(o, torch.Tensor))

    hooks = [m.register_forward_hook(count) for m in generator.modules()]
    try:
        generator.eval()
        with torch.no_grad():
            z = generator.sample_latent(1, torch.Generator(), "meta")
            if is_conditional(generator):
                generator(z, torch.zeros(1, dtype=torch.int64, device="meta"))
            else:
                generator(z)
    except GanforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever fails, the size stays unchecked
        raise refusal(source, f"cannot check the memory one sample of its generator needs "
                              f"(a forward pass on the meta device failed: "
                              f"{_reason(exc)})") from None
    finally:
        for hook in hooks:
            hook.remove()
    if total > MAX_SAMPLE_ELEMENTS:
        raise refusal(source, f"one sample of its generator would need {total} values in "
                              f"its layers' outputs, over the limit of {MAX_SAMPLE_ELEMENTS}")


def check_before_building(build: Callable[[], Mapping[str, torch.nn.Module]],
                          sections: Mapping[str, tuple[str, Mapping[str, TensorInfo]]],
                          source: Path | str) -> None:
    """Build the networks on ``meta`` with ``build`` (``{"generator": G, ...}``), compare
    each with its checkpoint section (``sections[name]``: tensor prefix and header
    entries), bound its size, and bound the memory of one sample of the generator."""
    on_meta = built_on_meta(build, source)
    for name, module in on_meta.items():
        prefix, entries = sections[name]
        check_module_layout(module, entries, prefix, source)
        check_network_size(module, prefix, source)
    generator = on_meta.get("generator")
    if isinstance(generator, Generator):
        check_sample_size(generator, source)
