"""Checks of optimizers and schedulers; and the one module the contract reads every
component check from: the checks of the component state protocol (``state_checks``),
losses (``loss_checks``), datasets (``data_checks``), metrics and feature extractors
(``metric_checks``) are re-exported here, so ``component_checks.<name>`` keeps working."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .data_checks import (
    build_dataset,
    check_dataset_determinism,
    check_dataset_items,
    check_dataset_spec,
    exercise_dataset,
)
from .loss_checks import (
    LOSS_SPEC,
    LossCase,
    check_loss_bf16,
    check_loss_determinism,
    check_loss_gradients,
    check_loss_labels,
    check_loss_values,
    exercise_loss,
)
from .loss_checks import _scalar as _scalar
from .metric_checks import (
    check_extractor_determinism,
    check_extractor_features,
    check_metric_determinism,
    check_metric_params,
    check_metric_score,
    exercise_extractor,
    exercise_metric,
)
from .report import fail
from .state_checks import check_component_state, check_figures

__all__ = [
    "LOSS_SPEC",
    "LossCase",
    "build_dataset",
    "check_component_state",
    "check_dataset_determinism",
    "check_dataset_items",
    "check_dataset_spec",
    "check_extractor_determinism",
    "check_extractor_features",
    "check_figures",
    "check_loss_bf16",
    "check_loss_determinism",
    "check_loss_gradients",
    "check_loss_labels",
    "check_loss_values",
    "check_metric_determinism",
    "check_metric_params",
    "check_metric_score",
    "check_optimizer_determinism",
    "check_optimizer_step",
    "check_scheduler_determinism",
    "check_scheduler_factor",
    "exercise_dataset",
    "exercise_extractor",
    "exercise_loss",
    "exercise_metric",
    "exercise_optimizer",
]

# -- optimizers -----------------------------------------------------------------------------


def _optimizer_run(optimizer: Any, steps: int = 2) -> tuple[torch.optim.Optimizer,
                                                             list[torch.Tensor],
                                                             list[torch.Tensor]]:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in module.parameters()]
    built = optimizer.build(module.parameters(), torch.device("cpu"))
    if not isinstance(built, torch.optim.Optimizer):
        raise fail(f"build() returned {type(built).__name__}, not a torch.optim.Optimizer")
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(6))
    for _ in range(steps):
        built.zero_grad()
        module(x).square().mean().backward()
        built.step()
    return built, before, [p.detach().clone() for p in module.parameters()]


def exercise_optimizer(optimizer: Any) -> None:
    """Build the optimizer and take two steps (for the component state check)."""
    _optimizer_run(optimizer)


def check_optimizer_step(optimizer: Any) -> None:
    """``build(parameters, device)`` gives a torch optimizer whose param groups have an
    ``lr`` (the trainer sets it from the schedule), and a step changes the parameters
    to finite values."""
    built, before, after = _optimizer_run(optimizer, steps=1)
    for i, group in enumerate(built.param_groups):
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, int | float):
            raise fail(f"param group {i} has no numeric 'lr' (the schedule sets "
                       "group['lr'] = base * factor)")
    if all(torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        raise fail("one step with non-zero gradients left every parameter unchanged")
    if not all(bool(torch.isfinite(p).all()) for p in after):
        raise fail("one step made parameters non-finite")


def check_optimizer_determinism(make: Callable[[], Any]) -> None:
    """Two fresh optimizers on the same parameters and gradients end at the same values."""
    _, _, a = _optimizer_run(make())
    _, _, b = _optimizer_run(make())
    if not all(torch.equal(x, y) for x, y in zip(a, b, strict=True)):
        raise fail("two runs of two steps from the same start give other parameters")


# -- schedulers -----------------------------------------------------------------------------

_TOTALS = (1, 7, 100)


def _factors(scheduler: Any, reverse: bool = False) -> dict[tuple[int, int], float]:
    points = [(step, total) for total in _TOTALS for step in range(1, total + 1)]
    values: dict[tuple[int, int], float] = {}
    for step, total in reversed(points) if reverse else points:
        value = scheduler.factor(step, total)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(f"factor({step}, {total}) returned {type(value).__name__}, not a "
                       "float")
        if not math.isfinite(value) or value < 0:
            raise fail(f"factor({step}, {total}) = {value}: must be finite and >= 0")
        values[(step, total)] = float(value)
    return values


def check_scheduler_factor(scheduler: Any) -> None:
    """``factor(step, total)`` is a finite non-negative real number for every step of runs
    of 1, 7 and 100 steps."""
    _factors(scheduler)


def check_scheduler_determinism(make: Callable[[], Any]) -> None:
    """A fresh schedule gives the same factors, asked in reverse order (a resumed run asks
    from the middle): the factor is a function of the step, or its state is kept with
    ``component_state``."""
    first = make()
    forward = _factors(first)
    second = make()
    stateful = first.component_state() is not None
    again = _factors(second, reverse=not stateful)
    differ = [k for k in forward if forward[k] != again[k]]
    if differ:
        step, total = differ[0]
        raise fail(f"factor({step}, {total}) is {forward[differ[0]]} in order and "
                   f"{again[differ[0]]} {'again' if stateful else 'in reverse order'}: "
                   "schedules must be a function of (step, total) or keep their state in "
                   "component_state()")
