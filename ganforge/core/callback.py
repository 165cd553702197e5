"""Callbacks: code that runs at fixed points of a training run, given a narrow context.

A callback is a class deriving from :class:`Callback` that overrides some of its no-op
hooks. The trainer calls them in one order (the built-in periodic work first, then the
callbacks of the Python API, then those of the recipe's ``[callbacks.<label>]`` tables,
then the periodic checkpoint):

``on_train_start(ctx)``
    once, before the first step of this session (after a resume: at the restored step).
``on_step_end(ctx, step)``
    after training step ``step`` when :meth:`Callback.due` says so (every ``every`` steps
    and at the last step); with ``on_sync_steps = True`` also on every step where another
    callback is due.
``on_sample_written(ctx, path)`` / ``on_checkpoint_saved(ctx, path)``
    after a sample grid or a checkpoint was written.
``on_rollback(ctx, step)``
    the run was rolled back to the checkpoint of ``step`` after a divergence.
``on_train_end(ctx, interrupted)``
    once, when the loop ends (finished, stopped by a callback, or interrupted by a signal).

Steps where a callback is due are the only steps that synchronise with the host: keep
``every`` large for work that reads device values, and set ``host_sync = False`` for a
callback that reads none (a counter), so it may run on every step for free.

A callback keeps what must survive a checkpoint in :meth:`Callback.state_dict` (a flat
dict of tensors and JSON-able values) and takes it back in :meth:`Callback.load_state_dict`
on resume. The context (:class:`CallbackContext`) is all it sees of the run: never the
trainer. See ``docs/callbacks.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

if TYPE_CHECKING:
    from .interfaces import Requirement


@attrs.frozen
class NoParams:
    """The params of a callback that takes none."""


class MetricsSink(Protocol):
    """Where a callback logs: ``metrics.jsonl``, TensorBoard and the ``ganforge_log``
    observer hook (one call per step, with everything logged on that step)."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log named numbers for ``step`` (use your own prefix, e.g. ``"mine/x"``)."""

    def evaluation(self, step: int, record: dict[str, object]) -> None:
        """Record one score with its protocol (``evaluations.jsonl``)."""

    def image_grid(self, step: int, grid: Any) -> None:
        """Record an image grid (CHW in [0, 1]) in TensorBoard."""


class CallbackContext(Protocol):
    """What a callback sees of the run. Read the parts; change the run only through the
    methods. Files are written by rank 0 alone (``is_main``) under ``torchrun``."""

    @property
    def step(self) -> int:
        """The step just trained (the restored step in ``on_train_start``)."""

    @property
    def recipe(self) -> Any:
        """The resolved :class:`~ganforge.recipe.Recipe`."""

    @property
    def registry(self) -> Any:
        """The :class:`~ganforge.core.registry.Registry` of the run's plugins."""

    @property
    def experiment(self) -> Any:
        """The assembled :class:`~ganforge.training.experiment.Experiment` (G, D, loss,
        optimizers, EMA, dataset...): read it, do not replace its parts."""

    @property
    def dirs(self) -> Any:
        """The :class:`~ganforge.training.run_dir.RunDirectory`: every path of the run."""

    @property
    def log(self) -> MetricsSink:
        """The metrics sink."""

    @property
    def metrics(self) -> Mapping[str, float]:
        """The latest values read back (losses, ``lr/``, ``eval/``, what callbacks logged)."""

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0; always, without torchrun)."""

    @property
    def stop_requested(self) -> bool:
        """True once Ctrl-C or SIGTERM asked the run to stop: skip slow work."""

    def request_stop(self, reason: str) -> None:
        """End the run after this step (all ranks agree), with a checkpoint of the step."""

    def note(self, message: str) -> None:
        """Show a one-line message (through the progress display)."""

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write a checkpoint of this step (default: the rotating ``step-N`` one)."""

    def write_samples(self) -> Path:
        """Write the sample grid of the fixed latents for this step."""


class Callback:
    """Base of every callback: hooks that do nothing, a period, and an empty state.

    Registered callbacks (kind ``callback``, used from a ``[callbacks.<label>]`` recipe
    table) have a nested frozen attrs class ``Params`` and are built as ``cls(params)``;
    callbacks passed to ``train(..., callbacks=[...])`` are built by their user and need
    no params.
    """

    Params: ClassVar[type] = NoParams
    #: Called by :meth:`on_step_end` every ``every`` steps and at the last one; 0: never.
    every: int = 0
    #: Whether being due makes a step synchronise with the host (the divergence watch is
    #: read first on such steps). False for a callback that reads no device value.
    host_sync: bool = True
    #: Also call :meth:`on_step_end` on every step where another callback is due.
    on_sync_steps: bool = False
    #: Where the state goes in a checkpoint (``callbacks.<key>``): the recipe label, or
    #: for callbacks given in Python the class name unless set (two of one class:
    #: ``Name_2``...). Keep it stable across a resume.
    key: str | None = None

    def __init__(self, params: Any = None) -> None:
        self.params = params

    def due(self, step: int, last: bool) -> bool:
        """True when :meth:`on_step_end` runs after ``step`` (``last``: the run's last)."""
        return bool(self.every) and (step % self.every == 0 or last)

    def on_train_start(self, ctx: CallbackContext) -> None:
        """The loop is about to start (or continue) at ``ctx.step``."""

    def on_step_end(self, ctx: CallbackContext, step: int) -> None:
        """Training step ``step`` ended and this callback is due."""

    def on_sample_written(self, ctx: CallbackContext, path: Path) -> None:
        """A sample grid was written to ``path``."""

    def on_checkpoint_saved(self, ctx: CallbackContext, path: Path) -> None:
        """A complete checkpoint was written to ``path``."""

    def on_rollback(self, ctx: CallbackContext, step: int) -> None:
        """The run was rolled back to step ``step`` (``run.on_divergence = "rollback"``)."""

    def on_train_end(self, ctx: CallbackContext, interrupted: bool) -> None:
        """The loop ended at ``ctx.step``; ``interrupted``: by Ctrl-C or SIGTERM."""

    def state_dict(self) -> dict[str, Any]:
        """What must survive a checkpoint: names to tensors or JSON-able values (default:
        nothing). Returned again, exactly, to :meth:`load_state_dict` on resume."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (called on resume, before
        :meth:`on_train_start`)."""
        if state:
            raise TypeError(f"{type(self).__name__} returned state from state_dict() but "
                            "does not implement load_state_dict()")

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        """What a registered callback with ``params`` needs from ``recipe`` (checked when
        the recipe is built, see :meth:`ganforge.Component.requirements`). Default: none."""
        return []
