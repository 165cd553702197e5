"""Built-in callbacks, used from a recipe's ``[callbacks.<label>]`` tables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ..core.callback import Callback, CallbackContext
from ..core.interfaces import Requirement, requires
from ..core.params import param


class StopAtMetric(Callback):
    """Ends the run early, with a checkpoint, once a logged value reaches a target (e.g.
    ``eval/fid`` below 20, ``loss_d`` above 0.1). Checked on the steps where values are
    read back; a resumed run that had reached it stops at once."""

    @attrs.frozen
    class Params:
        metric: str = param("eval/fid", "the logged name to watch: eval/<label> (an "
                            "[eval.metrics.<label>] scored during training), loss_d, "
                            "loss_g, lr/generator, reg/<label>...")
        target: float = param(0.0, "the value that ends the run")
        mode: str = param("below", "'below': stop once value <= target; 'above': once "
                          "value >= target",
                          validator=attrs.validators.in_(["below", "above"]))
        min_step: int = param(0, "never stop before this step",
                              validator=attrs.validators.ge(0))

    on_sync_steps = True

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        #: ``{"step", "value"}`` where the target was reached (checkpointed), or None.
        self.reached: dict[str, Any] | None = None

    @classmethod
    def requirements(cls, params: Params, recipe: Any) -> list[Requirement]:
        if not params.metric.startswith("eval/"):
            return []
        label = params.metric[len("eval/"):]
        return [requires(f"[eval.metrics.{label}] scored during training (eval.every > 0)",
                         label in recipe.metrics and recipe.eval.every > 0,
                         f"it watches {params.metric}")]

    def _reason(self) -> str:
        assert self.reached is not None
        p = self.params
        return (f"{p.metric} = {self.reached['value']:.6g} reached the target {p.target:g} "
                f"({p.mode}) at step {self.reached['step']}")

    def on_train_start(self, ctx: CallbackContext) -> None:
        if self.reached is not None:
            ctx.request_stop(self._reason())

    def on_step_end(self, ctx: CallbackContext, step: int) -> None:
        value = ctx.metrics.get(self.params.metric)
        if value is None or step < self.params.min_step or not math.isfinite(value):
            return
        p = self.params
        if (value <= p.target) if p.mode == "below" else (value >= p.target):
            self.reached = {"step": step, "value": float(value)}
            ctx.request_stop(self._reason())

    def state_dict(self) -> dict[str, Any]:
        return {} if self.reached is None else {"reached": dict(self.reached)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        reached = state.get("reached")
        if reached is not None and not (isinstance(reached, Mapping)
                                        and isinstance(reached.get("step"), int)
                                        and isinstance(reached.get("value"), (int, float))):
            raise ValueError(f"'reached' must be {{'step': int, 'value': number}}: {reached!r}")
        self.reached = None if reached is None else dict(reached)
