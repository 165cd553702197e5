"""Checks of the component state protocol (``component_state`` /
``load_component_state``) and of the figures a component logs (``figures()``)."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..core.interfaces import ComponentState
from .report import SkipCheck, fail


def check_component_state(make: Callable[[], Any], exercise: Callable[[Any], Any]) -> None:
    """When ``component_state()`` is not None after some use: its tensors are tensors, its
    values survive JSON (the checkpoint stores them so), and a fresh instance given it
    through ``load_component_state`` returns the same state."""
    component = make()
    exercise(component)
    state = component.component_state()
    if state is None:
        raise SkipCheck("stateless (component_state() is None)")
    if not isinstance(state, ComponentState):
        raise fail(f"component_state() returned {type(state).__name__}, not a "
                   "ganforge.ComponentState")
    bad = [k for k, v in state.tensors.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise fail(f"component_state().tensors must map names to tensors: {bad[:5]}")
    try:
        values = json.loads(json.dumps(state.values))
    except (TypeError, ValueError) as error:
        raise fail(f"component_state().values are not JSON-able: {error}") from error
    saved = ComponentState({k: v.detach().clone() for k, v in state.tensors.items()}, values)
    fresh = make()
    fresh.load_component_state(saved)
    back = fresh.component_state()
    if not isinstance(back, ComponentState):
        raise fail("after load_component_state, component_state() returned "
                   f"{type(back).__name__}")
    if back.tensors.keys() != state.tensors.keys():
        raise fail(f"after load_component_state the tensors are {sorted(back.tensors)}, "
                   f"not {sorted(state.tensors)}")
    differ = [k for k, v in state.tensors.items()
              if back.tensors[k].dtype != v.dtype or not torch.equal(back.tensors[k].cpu(),
                                                                     v.detach().cpu())]
    if differ:
        raise fail(f"state does not round-trip: tensors {', '.join(differ[:5])} differ after "
                   "load_component_state(component_state())")
    try:
        back_values = json.loads(json.dumps(back.values))
    except (TypeError, ValueError) as error:
        raise fail(f"component_state().values are not JSON-able: {error}") from error
    if back_values != values:
        raise fail(f"state does not round-trip: values {back_values!r} after "
                   f"load_component_state, saved {values!r}")


def check_figures(make: Callable[[], Any], exercise: Callable[[Any], Any]) -> None:
    """A component that overrides ``figures()`` returns, after some use, a mapping of
    non-empty names to finite numbers or one-element tensors."""
    from ..core.interfaces import Component

    component = make()
    if getattr(type(component), "figures", None) is Component.figures:
        raise SkipCheck("logs no figures of its own")
    exercise(component)
    figures = component.figures()
    if not isinstance(figures, Mapping):
        raise fail(f"figures() returned {type(figures).__name__}, not a mapping")
    for key, value in figures.items():
        if not isinstance(key, str) or not key:
            raise fail(f"figures() has the name {key!r}: names are non-empty strings")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise fail(f"figure {key!r} is a tensor of shape {tuple(value.shape)}, not "
                           "one number")
            value = float(value.detach().float())
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(f"figure {key!r} is {type(value).__name__}, not a number")
        if not math.isfinite(value):
            raise fail(f"figure {key!r} is {value}")
