"""The exponential moving average (EMA) of the generator's weights (``[ema]``).

A second generator, built from the same recipe, whose parameters trail G's:
``avg = beta * avg + (1 - beta) * G`` after every G update. Sampling, evaluation, ``best-*``
checkpoints and every command that loads a checkpoint's generator use the average when a
run keeps one (``--no-ema``: the raw G).

**BatchNorm buffers are copied from G, not averaged** (as StyleGAN2-ADA's training loop and
StudioGAN's ``Ema`` do): running statistics describe the activations of the weights that
produced them, and an average of statistics collected under many different weights
describes none of them. The copy is exact for the latest weights and close for the
average when it trails G by little; recomputing the statistics for the averaged weights
(StudioGAN's "standing statistics") costs forward passes at every sampling and is not done.

The average is checkpointed as ``generator_ema/<name>`` tensors and resumes exactly: its
update is a deterministic function of G's weights and the step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..recipe import EMAParams


def ema_beta(params: EMAParams, step: int, batch_size: int) -> float:
    """The weight of the old average after G update ``step`` (1-based): 0 (a copy) up to
    ``start``, else ``decay``, with the half-life capped by ``rampup`` times the images
    trained so far (StyleGAN2-ADA's ``ema_rampup``)."""
    if step <= params.start or params.decay == 0.0:
        return 0.0
    if not params.rampup:
        return params.decay
    half_life = batch_size * math.log(0.5) / math.log(params.decay)  # in images
    half_life = min(half_life, step * batch_size * params.rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


class GeneratorEMA:
    """The moving average of ``generator`` kept in ``average`` (a generator of the same
    recipe, in eval mode, with no gradients)."""

    def __init__(self, average: nn.Module, params: EMAParams, batch_size: int) -> None:
        self.average = average.eval().requires_grad_(False)
        self.params = params
        self.batch_size = batch_size

    def reset(self, generator: nn.Module) -> None:
        """Make the average a copy of ``generator`` (a fresh run)."""
        self.average.load_state_dict(generator.state_dict())

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Move the average towards ``generator`` after G update ``step``; copy buffers."""
        beta = ema_beta(self.params, step, self.batch_size)
        ours: list[torch.Tensor] = list(self.average.parameters())
        theirs = [p.detach() for p in generator.parameters()]
        if beta == 0.0:
            torch._foreach_copy_(ours, theirs)
        else:
            torch._foreach_lerp_(ours, theirs, 1.0 - beta)
        for mine, source in zip(self.average.buffers(), generator.buffers(), strict=True):
            mine.copy_(source)
