"""Capturing and restoring every random number generator a run uses, as tensors."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..io.rng_states import rng_state_problems

__all__ = ["capture_rng", "restore_rng", "rng_state_problems"]


def capture_rng(latent: torch.Generator) -> dict[str, torch.Tensor]:
    """RNG states under the ``rng/`` prefix: torch's CPU RNG, each CUDA device's, and
    the trainer's latent generator."""
    states = {"rng/torch_cpu": torch.get_rng_state(), "rng/latent": latent.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"rng/cuda/{i}"] = state
    return states


def restore_rng(states: Mapping[str, torch.Tensor], latent: torch.Generator) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only for devices that exist). Every
    state is checked first (:func:`rng_state_problems`), so a bad one raises
    ``ValueError`` before any generator is changed."""
    problems = rng_state_problems(states, latent, required=True)
    if problems:
        raise ValueError(f"RNG state does not load: {'; '.join(problems)}")
    torch.set_rng_state(states["rng/torch_cpu"])
    latent.set_state(states["rng/latent"])
    cuda = sorted((k for k in states if k.startswith("rng/cuda/")),
                  key=lambda k: int(k.rsplit("/", 1)[1]))
    if cuda and torch.cuda.is_available():
        count = torch.cuda.device_count()
        torch.cuda.set_rng_state_all([states[k] for k in cuda][:count])
