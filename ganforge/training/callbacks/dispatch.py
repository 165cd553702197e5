"""The callbacks of one run, in the order they run, and their checkpointed state.

:class:`CallbackList` calls the hooks (:mod:`ganforge.core.callback`) and keeps the rule of due
steps: after each step, the callbacks due on it run in order; when one of them is due with
``host_sync`` (it reads device values), the step synchronises with the host anyway, so the
callbacks with ``on_sync_steps`` run on it too (the divergence policy first). A rollback
ends the step's work and tells every callback.

The state of the API's and the recipe's callbacks goes into the checkpoint through the
per-component state mechanism, under ``callbacks.<key>`` (its tensors as
``state/callbacks.<key>/<name>``, its other values in the ``ganforge.components``
metadata): checkpoints written before callbacks had state hold none, and load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...core.callback import Callback
from ...core.errors import CheckpointError, TrainingError, UsageError
from .context import RunContext

#: The prefix of the checkpoint table of a callback's state.
STATE_PREFIX = "callbacks."
#: What a callback's key may look like (the recipe's labels look the same).
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def callback_keys(api: Sequence[Callback], recipe: Mapping[str, Callback]
                  ) -> dict[str, Callback]:
    """The checkpoint key of each of the API's and the recipe's callbacks: the recipe's
    label, else ``callback.key``, else the class name (``Name_2``... for repeats)."""
    keyed: dict[str, Callback] = dict(recipe)
    for callback in api:
        if not isinstance(callback, Callback):
            raise UsageError(f"callbacks: {callback!r} is not a ganforge.Callback")
        base = callback.key or type(callback).__name__
        if not KEY.fullmatch(base):
            raise UsageError(f"callback key {base!r}: a letter, then letters, digits or _ "
                             "(set the callback's key)")
        if callback.key and base in keyed:
            raise UsageError(f"callback key {base!r} is taken (by a [callbacks.<label>] table "
                             "or another callback); set another key")
        key, n = base, 1
        while key in keyed:
            n += 1
            key = f"{base}_{n}"
        keyed[key] = callback
    return keyed


class CallbackList:
    """Runs ``callbacks`` in order; ``keyed`` (a subset, by checkpoint key) keep state."""

    def __init__(self, callbacks: Sequence[Callback], keyed: Mapping[str, Callback]) -> None:
        self.callbacks = list(callbacks)
        self.keyed = dict(keyed)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def start(self, ctx: RunContext) -> None:
        for callback in self.callbacks:
            callback.on_train_start(ctx)

    def step_end(self, ctx: RunContext, step: int, last: bool) -> bool:
        """Run the callbacks due after ``step``; True when the run was rolled back."""
        due = [callback.due(step, last) for callback in self.callbacks]
        if not any(due):
            return False
        sync = any(d and c.host_sync for c, d in zip(self.callbacks, due, strict=True))
        for callback, is_due in zip(self.callbacks, due, strict=True):
            if is_due or (sync and callback.on_sync_steps):
                callback.on_step_end(ctx, step)
                if ctx.rolled_back:
                    ctx.rolled_back = False
                    for each in self.callbacks:
                        each.on_rollback(ctx, ctx.step)
                    return True
        return False

    def sample_written(self, ctx: RunContext, path: Path) -> None:
        for callback in self.callbacks:
            callback.on_sample_written(ctx, path)

    def checkpoint_saved(self, ctx: RunContext, path: Path) -> None:
        for callback in self.callbacks:
            callback.on_checkpoint_saved(ctx, path)

    def end(self, ctx: RunContext, interrupted: bool) -> None:
        for callback in self.callbacks:
            callback.on_train_end(ctx, interrupted)

    # -- state -------------------------------------------------------------------------------

    def states(self) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
        """The callbacks' state for a checkpoint: tensors named
        ``state/callbacks.<key>/<name>``, and JSON-able values by ``callbacks.<key>``."""
        tensors: dict[str, torch.Tensor] = {}
        values: dict[str, dict[str, Any]] = {}
        for key, callback in self.keyed.items():
            state = callback.state_dict()
            if not state:
                continue
            table = STATE_PREFIX + key
            rest = {}
            for name, value in state.items():
                if not isinstance(name, str) or "/" in name or not name:
                    raise TrainingError(f"callback {key!r}: state_dict() name {name!r} is not "
                                        "a non-empty string without '/'")
                if isinstance(value, torch.Tensor):
                    tensors[f"state/{table}/{name}"] = value.detach()
                else:
                    rest[name] = value
            try:
                values[table] = json.loads(json.dumps(rest, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise TrainingError(f"callback {key!r}: state_dict() values must be tensors "
                                    f"or JSON-able: {exc}") from None
        return tensors, values

    def load_states(self, tensors: Mapping[str, torch.Tensor],
                    values: Mapping[str, Mapping[str, Any]], source: Path | str) -> list[str]:
        """Give each keyed callback its saved state; returns notes for the callbacks that
        have state the checkpoint does not hold, and for saved state no callback takes."""
        saved = set(values) | {k.split("/")[1] for k in tensors}
        notes = []
        for table in sorted(saved - {STATE_PREFIX + key for key in self.keyed}):
            notes.append(f"{source}: holds state of [{table}], a callback this run does not "
                         "have; left unused")
        for key, callback in self.keyed.items():
            table = STATE_PREFIX + key
            if table not in saved:
                if callback.state_dict():
                    notes.append(f"{source}: no saved state for callback [{table}]; it starts "
                                 "afresh")
                continue
            prefix = f"state/{table}/"
            state = {**values.get(table, {}),
                     **{k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}}
            try:
                callback.load_state_dict(state)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CheckpointError(f"{source}: state of callback [{table}] does not load: "
                                      f"{exc}") from None
        return notes


def split_callback_state(tensors: Mapping[str, torch.Tensor],
                         values: Mapping[str, Mapping[str, Any]]
                         ) -> tuple[tuple[dict[str, torch.Tensor], dict[str, Any]],
                                    tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """``(tensors, values)`` of a checkpoint split into the callbacks' and the rest."""
    def is_callback(table: str) -> bool:
        return table.startswith(STATE_PREFIX)

    mine = ({k: v for k, v in tensors.items()
             if k.startswith("state/") and is_callback(k.split("/")[1])},
            {k: v for k, v in values.items() if is_callback(k)})
    rest = ({k: v for k, v in tensors.items() if k not in mine[0]},
            {k: v for k, v in values.items() if k not in mine[1]})
    return mine, rest
