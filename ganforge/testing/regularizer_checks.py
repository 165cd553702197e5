"""Checks of regularizers: the penalty is a finite fp32 scalar with gradients into D, the
same random stream gives the same penalty, and a constraint keeps D usable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .loss_checks import LossCase, _scalar
from .report import SkipCheck, fail


class _BCE:
    """The loss the regularizer checks build their tiny networks for (unconditional)."""

    needs_labels = False
    reads_class_logits = False


def _penalty(regularizer: Any, seed: int = 0) -> tuple[LossCase, Any]:
    case = LossCase(_BCE(), conditional=False, seed=seed)
    fake = case.fake().detach()
    value = regularizer.penalty(case.D_call, case.real, fake, real_labels=None,
                                fake_labels=None, generator=torch.Generator().manual_seed(7))
    return case, value


def check_penalty(regularizer: Any) -> None:
    """``penalty(...)`` returns None (a constraint) or a finite float scalar that requires
    grad; a penalty's params have a numeric ``weight`` and an integer ``every`` >= 1 (subclass
    :class:`ganforge.core.interfaces.RegularizerParams`); ``after_update(D)`` runs."""
    case, value = _penalty(regularizer)
    regularizer.after_update(case.D)
    if value is None:
        raise SkipCheck("a constraint (penalty() is None)")
    _scalar(value, "penalty()")
    weight = getattr(regularizer.params, "weight", None)
    every = getattr(regularizer.params, "every", None)
    if isinstance(weight, bool) or not isinstance(weight, int | float) \
            or isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise fail("a penalty's Params need weight (a number) and every (an int >= 1): "
                   "subclass ganforge.core.interfaces.RegularizerParams")


def check_penalty_gradients(regularizer: Any) -> None:
    """Backward of the penalty gives finite gradients to D's parameters, and some are
    non-zero (it is differentiated with D, twice for a gradient penalty)."""
    case, value = _penalty(regularizer)
    if value is None:
        raise SkipCheck("a constraint (penalty() is None)")
    value.backward()
    grads = [p.grad for p in case.D.parameters() if p.grad is not None]
    if not grads:
        raise fail("the penalty gives no gradient to D's parameters")
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        raise fail("the penalty gives non-finite gradients")
    if all(bool((g == 0).all()) for g in grads):
        raise fail("the penalty's gradients are all zero")


def check_penalty_determinism(make: Callable[[], Any]) -> None:
    """Two fresh instances with the same random generator state give the same penalty, and
    a constraint leaves the same weights."""
    first_case, first = _penalty(make())
    second_case, second = _penalty(make())
    if first is None:
        a, b = make(), make()
        a.after_update(first_case.D)
        b.after_update(second_case.D)
        same = all(torch.equal(x, y) for x, y in zip(first_case.D.parameters(),
                                                    second_case.D.parameters(), strict=True))
        if not same:
            raise fail("after_update leaves other weights on the same network")
        return
    if not torch.equal(first.detach(), second.detach()):
        raise fail(f"the same inputs and random state give other penalties: {float(first)} "
                   f"then {float(second)}")


def exercise_regularizer(regularizer: Any) -> None:
    """Use a regularizer as three D updates do (for the component state check)."""
    for step in (1, 2, 3):
        regularizer.on_step(step)
        case, _ = _penalty(regularizer, seed=step)
        regularizer.after_update(case.D)
