"""Whether the RNG states a checkpoint holds (``rng/torch_cpu``, ``rng/latent``,
``rng/cuda/<i>``) can be restored, checked when the file is read, before anyone restores
them. Capturing and restoring them is :mod:`ganforge.training.rng`'s job."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_CUDA_KEY = re.compile(r"rng/cuda/(0|[1-9][0-9]{0,3})")
#: Bytes of a CUDA generator's state: seed and Philox offset, or the seed alone (what
#: ``CUDAGeneratorImpl::set_state`` accepts).
_CUDA_STATE_BYTES = (16, 8)


def rng_state_problems(states: Mapping[str, torch.Tensor], latent: torch.Generator | None = None,
                       required: bool = False) -> list[str]:
    """Why the ``rng/`` entries of ``states`` cannot be restored (empty: they can).

    Every entry must be a known key holding a 1-D ``uint8`` tensor that torch accepts. A CPU
    state is tried on a throw-away generator, so a state torch would refuse is found
    without touching any live generator; a CUDA state must have the size torch accepts.
    ``rng/latent`` is the latent generator's state, which lives on the training device: it
    is checked against ``latent``'s device when given, else as either kind. With
    ``required``, ``rng/torch_cpu`` and ``rng/latent`` must be there.
    """
    problems: list[str] = []
    for key in sorted(k for k in states if k.startswith("rng/")):
        value = states[key]
        if key not in ("rng/torch_cpu", "rng/latent") and not _CUDA_KEY.fullmatch(key):
            problems.append(f"{key}: not an RNG state ganforge writes")
        elif not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 \
                or value.dim() != 1:
            shown = (f"{value.dtype} of shape {list(value.shape)}"
                     if isinstance(value, torch.Tensor) else type(value).__name__)
            problems.append(f"{key}: {shown}, a 1-D torch.uint8 tensor expected")
        elif key == "rng/torch_cpu" or (key == "rng/latent" and (
                latent.device.type == "cpu" if latent is not None
                else value.numel() not in _CUDA_STATE_BYTES)):
            problems.extend(_cpu_state_problems(key, value))
        elif value.numel() not in _CUDA_STATE_BYTES:
            problems.append(f"{key}: {value.numel()} bytes, a CUDA generator state has "
                            f"{_CUDA_STATE_BYTES[0]}")
    if required:
        problems += [f"{key}: missing" for key in ("rng/torch_cpu", "rng/latent")
                     if key not in states]
    return problems


def _cpu_state_problems(key: str, value: torch.Tensor) -> list[str]:
    """Try ``value`` on a throw-away CPU generator (torch checks size and contents)."""
    try:
        torch.Generator().set_state(value)
    except (RuntimeError, TypeError, ValueError) as exc:
        return [f"{key}: {(str(exc).splitlines() or ['refused by torch'])[0]}"]
    return []
