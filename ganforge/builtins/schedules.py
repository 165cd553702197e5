"""Built-in learning-rate schedules: ``constant``, ``linear`` and ``cosine``, each with an
optional linear warm-up. Each is a pure function of the step, so a resumed run continues
on exactly the same learning rates with no state of its own."""

from __future__ import annotations

import math

import attrs

from ..core.interfaces import Scheduler
from ..core.params import at_most, param

_MAX_STEPS = 10**9
_warmup = [attrs.validators.ge(0), at_most(_MAX_STEPS)]


def _optional_steps(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and not 1 <= value <= _MAX_STEPS:
        raise ValueError(f"'{attribute.name}' must be 1 to {_MAX_STEPS} or unset: {value}")


def warmup_factor(step: int, warmup: int) -> float:
    """Linear warm-up: ``step / warmup`` during the first ``warmup`` steps, then 1."""
    return min(1.0, step / warmup) if warmup > 0 else 1.0


def progress(step: int, warmup: int, total: int) -> float:
    """How far ``step`` is through the steps after warm-up, in [0, 1]: 0 at the first step
    after the warm-up (the full learning rate), 1 at step ``total``."""
    span = max(total - warmup - 1, 1)
    return min(max(step - warmup - 1, 0) / span, 1.0)


@attrs.frozen
class DecayParams:
    """Warm-up, end point and length of a decay to ``final`` times the learning rate."""

    warmup: int = param(0, "steps of linear warm-up from 0 (0: none)", validator=_warmup)
    final: float = param(0.0, "multiplier of the learning rate at the last step",
                         validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    steps: int | None = param(None, "steps the decay spans; unset: run.steps",
                              validator=_optional_steps)


class ConstantSchedule(Scheduler):
    """The optimizer's learning rate throughout (DCGAN), after an optional warm-up."""

    @attrs.frozen
    class Params:
        """Warm-up of the constant schedule."""

        warmup: int = param(0, "steps of linear warm-up from 0 (0: none)", validator=_warmup)

    def factor(self, step: int, total: int) -> float:
        return warmup_factor(step, self.params.warmup)


class LinearSchedule(Scheduler):
    """Linear decay to ``final`` times the learning rate at the last step (SNGAN, mimicry:
    to zero), after an optional warm-up."""

    Params = DecayParams

    def factor(self, step: int, total: int) -> float:
        p = self.params
        done = progress(step, p.warmup, p.steps or total)
        return warmup_factor(step, p.warmup) * (1.0 - (1.0 - p.final) * done)


class CosineSchedule(Scheduler):
    """Cosine decay (Loshchilov & Hutter 2017, without restarts) to ``final`` times the
    learning rate at the last step, after an optional warm-up."""

    Params = DecayParams

    def factor(self, step: int, total: int) -> float:
        p = self.params
        done = progress(step, p.warmup, p.steps or total)
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        return warmup_factor(step, p.warmup) * (p.final + (1.0 - p.final) * cosine)
