"""The callbacks of a run: the built-in periodic work (log, evaluate, sample, checkpoint,
divergence policy, stop vote, observer hooks) as ordinary :class:`~ganforge.Callback`
subclasses, the context they get (:class:`RunContext`), and the list that runs them with
the user's own (:func:`run_callbacks`).

This package imports neither the trainer nor :mod:`~ganforge.training.resume`: callbacks
see the run only through their context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...core.callback import Callback, CallbackContext
from .context import RunContext, RunLog
from .control import DivergencePolicy, ObserverBroadcast, StopVoting
from .dispatch import CallbackList, callback_keys, split_callback_state
from .meter import LOSS_SUMS, LossMeter, component_figures
from .periodic import Evaluate, LogLosses, SaveCheckpoint, WriteSamples

__all__ = [
    "LOSS_SUMS", "Callback", "CallbackContext", "CallbackList", "DivergencePolicy",
    "Evaluate", "LogLosses", "LossMeter", "ObserverBroadcast", "RunContext", "RunLog",
    "SaveCheckpoint", "StopVoting", "WriteSamples", "callback_keys", "component_figures",
    "run_callbacks", "split_callback_state",
]


def run_callbacks(recipe: Any, registry: Any, extra: Sequence[Callback] = ()) -> CallbackList:
    """Every callback of a run of ``recipe``, in the order they run on a step: the
    divergence policy, log, evaluate, sample, ``extra`` (the Python API's), the recipe's
    ``[callbacks.<label>]`` (built from ``registry``), checkpoint, the observer hooks, the
    stop vote."""
    run = recipe.run
    from_recipe = {label: choice.create(registry) for label, choice in recipe.callbacks.items()}
    keyed = callback_keys(list(extra), from_recipe)
    ordered: list[Callback] = [
        DivergencePolicy(), LogLosses(run.log_every), Evaluate(recipe.eval.every),
        WriteSamples(run.sample_every), *extra, *from_recipe.values(),
        SaveCheckpoint(run.checkpoint_every), ObserverBroadcast(), StopVoting()]
    return CallbackList(ordered, keyed)
