"""The context callbacks get: a narrow view of one run (:class:`RunContext`), never the
trainer. It implements :class:`~ganforge.core.callback.CallbackContext`, the documented part;
the rest (marked "built-ins") is what the built-in callbacks need to do the trainer's
periodic work, and may change."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RunLog:
    """The metrics sink of a run: ``metrics.jsonl`` and TensorBoard (rank 0), the
    ``ganforge_log`` hook (once per step) and the run's latest metrics."""

    def __init__(self, host: Any) -> None:
        self._host = host

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log named numbers for ``step``."""
        self._host.log.scalars(step, values)
        self._host.logged.update(values)
        self._host.metrics.update(values)

    def evaluation(self, step: int, record: dict[str, object]) -> None:
        """Record one score with its protocol (``evaluations.jsonl``)."""
        self._host.log.evaluation(step, record)

    def image_grid(self, step: int, grid: Any) -> None:
        """Record an image grid (CHW in [0, 1]) in TensorBoard."""
        self._host.log.image_grid(step, grid)


class RunContext:
    """What a callback sees of the run it is called in (see ``docs/callbacks.md``)."""

    def __init__(self, host: Any) -> None:
        self._host = host
        self.log = RunLog(host)
        #: The progress display while the loop runs (None before).
        self.progress: Any = None
        #: The signal handler of the loop (built-ins; None before the loop).
        self.stop_request: Any = None
        #: A callback asked this process to stop (:meth:`request_stop`), and why.
        self.stop_asked = False
        self.stop_reason: str | None = None
        #: Every rank agreed to stop after this step.
        self.stopping = False
        #: Set by :meth:`roll_back`: the rest of the step's callbacks do not run.
        self.rolled_back = False
        self._stack: contextlib.ExitStack | None = None

    # -- the documented context (ganforge.core.callback.CallbackContext) -------------------------

    step = property(lambda self: self._host.step, doc="The step just trained.")
    recipe = property(lambda self: self._host.recipe, doc="The resolved recipe.")
    registry = property(lambda self: self._host.registry, doc="The run's registry.")
    experiment = property(lambda self: self._host.experiment, doc="The assembled parts.")
    dirs = property(lambda self: self._host.dirs, doc="The run directory's paths.")
    metrics = property(lambda self: self._host.metrics, doc="The latest values read back.")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return bool(self._host.dist.is_main)

    @property
    def stop_requested(self) -> bool:
        """True once Ctrl-C or SIGTERM asked the run to stop."""
        return bool(self._host.stop_requested())

    def request_stop(self, reason: str) -> None:
        """End the run after this step, with a checkpoint (every rank agrees first)."""
        if not self.stop_asked:
            self.stop_asked, self.stop_reason = True, reason

    def note(self, message: str) -> None:
        """Show a one-line message."""
        if self.progress is not None:
            self.progress.note(message)

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write a checkpoint of this step (default: the rotating ``step-N`` one)."""
        return self._host.save_checkpoint(path)

    def write_samples(self) -> Path:
        """Write the sample grid of the fixed latents for this step."""
        return self._host.write_samples()

    # -- built-ins ---------------------------------------------------------------------------

    dist = property(lambda self: self._host.dist, doc="The distributed context.")
    train_step = property(lambda self: self._host.train_step, doc="The GANStep.")
    losses = property(lambda self: self._host.losses, doc="The LossMeter.")
    skipped_images = property(lambda self: self._host.skipped_count,
                              doc="Images skipped in this session.")
    rollbacks = property(lambda self: self._host.rollbacks, doc="Rollbacks so far.")

    @property
    def best(self) -> dict[str, Any] | None:
        """``{"label", "value", "step"}`` of the best evaluation so far (checkpointed)."""
        return self._host.best

    @best.setter
    def best(self, value: dict[str, Any] | None) -> None:
        self._host.best = value

    @property
    def signal(self) -> int | None:
        """The stop signal this process received, if any."""
        return None if self.stop_request is None else self.stop_request.signum

    def elapsed_s(self) -> float:
        """Training wall time of the run so far, earlier sessions included."""
        return float(self._host.elapsed_s())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Broadcast a pluggy observer hook (rank 0)."""
        self._host.notify(hook, **kwargs)

    def take_logged(self) -> dict[str, float]:
        """What was logged since the last call (for ``ganforge_log``)."""
        logged = dict(self._host.logged)
        self._host.logged.clear()
        return logged

    def show_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Show read-back losses on the progress display."""
        if self.progress is not None:
            self.progress.logged(step, metrics)

    def roll_back(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` after a divergence."""
        self._host.roll_back(checkpoint)
        self.rolled_back = True

    def agree_stop(self, signum: int | None) -> None:
        """Every rank stops after this step: for ``signum`` (None: a callback asked)."""
        self.stopping = True
        if signum is not None and self.stop_request is not None:
            self.stop_request.agree(signum)
        elif signum is None and self.stop_reason is None:
            self.stop_reason = "a callback on another rank asked to stop"

    def on_close(self, close: Callable[[], Any]) -> None:
        """Call ``close`` when the loop ends, however it ends."""
        if self._stack is not None:
            self._stack.callback(close)

    def begin(self, stack: contextlib.ExitStack, progress: Any, stop_request: Any) -> None:
        """The loop starts (called by the trainer)."""
        self._stack, self.progress, self.stop_request = stack, progress, stop_request
        self.stop_asked, self.stop_reason, self.stopping = False, None, False
        stack.callback(self._end)

    def _end(self) -> None:
        self._stack = self.progress = None
