"""The built-in callbacks that steer a run rather than record it: the divergence policy,
the stop vote, and the broadcast of the pluggy observer hooks to plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...core.callback import Callback
from ...core.errors import TrainingError
from ...io.files import writing
from ..resume_point import resume_checkpoint
from ..stopping import StopVote

if TYPE_CHECKING:
    from .context import RunContext

#: What the stop vote posts for a stop a callback asked for (above every signal number).
CALLBACK_STOP = 1000


class DivergencePolicy(Callback):
    """Runs first on every step where other work is due (a sync paid for anyway): reads the
    divergence watch, agreed by every rank, and stops the run or rolls it back to the newest
    checkpoint (``run.on_divergence``); every rollback is logged in ``rollbacks.jsonl``."""

    on_sync_steps = True

    def on_step_end(self, ctx: RunContext, step: int) -> None:  # type: ignore[override]
        diverged = self._check_divergence(ctx)
        if diverged is not None:
            self._on_divergence(ctx, *diverged)

    def _check_divergence(self, ctx: RunContext) -> tuple[str, int] | None:
        """The earliest divergence seen by any rank (agreed by all ranks)."""
        mine = ctx.train_step.watch.check()
        if not ctx.dist.enabled:
            return mine
        order = ("discriminator", "generator")
        code = torch.tensor([-1 if mine is None else mine[1],
                             -1 if mine is None else order.index(mine[0])],
                            device=ctx.experiment.device)
        seen = [tuple(t.tolist()) for t in ctx.dist.gather(code) if t[0] >= 0]
        if not seen:
            return None
        step, network = min(seen)
        return order[int(network)], int(step)

    def _on_divergence(self, ctx: RunContext, network: str, first_bad: int) -> None:
        """Stop the run, or roll back to the newest checkpoint and go on with fresh batches
        and latents (``run.on_divergence``); every rollback is logged."""
        run = ctx.recipe.run
        checkpoint = resume_checkpoint(ctx.dirs.checkpoints)  # refused: stops
        what = (f"the {network} diverged at step {first_bad}: non-finite loss or gradient "
                f"(detected at step {ctx.step})")
        if run.on_divergence == "stop" or checkpoint is None or \
                ctx.rollbacks >= run.max_rollbacks:
            reason = ("" if run.on_divergence == "stop" else
                      "; no checkpoint to roll back to" if checkpoint is None else
                      f"; {ctx.rollbacks} rollbacks already (run.max_rollbacks)")
            keep = f"; the last checkpoint {checkpoint} holds finite state" if checkpoint else ""
            raise TrainingError(f"{what}{reason}; the run stopped{keep}")
        detected = ctx.step
        ctx.roll_back(checkpoint)
        record = {"step": ctx.step, "rollback": ctx.rollbacks, "network": network,
                  "first_bad_step": first_bad, "detected_at": detected,
                  "checkpoint": checkpoint.name}
        if ctx.is_main:
            with writing(ctx.dirs.rollbacks), \
                    open(ctx.dirs.rollbacks, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        ctx.note(f"{what}; rolled back to {checkpoint.name} "
                 f"(rollback {ctx.rollbacks} of at most {run.max_rollbacks})")


class ObserverBroadcast(Callback):
    """Calls the pluggy observer hooks (``ganforge_run_started``, ``ganforge_log`` once per
    step with everything logged on it, ``ganforge_sample_written``,
    ``ganforge_checkpoint_saved``, ``ganforge_run_finished``) on rank 0. Due on every
    step, it reads nothing from the device."""

    every = 1
    host_sync = False

    def on_train_start(self, ctx: RunContext) -> None:  # type: ignore[override]
        ctx.notify("ganforge_run_started", run_dir=ctx.dirs.root,
                   recipe=ctx.recipe.to_dict(), step=ctx.step)

    def on_step_end(self, ctx: RunContext, step: int) -> None:  # type: ignore[override]
        logged = ctx.take_logged()
        if logged:  # losses, evaluation and callbacks' values of this step: one call
            ctx.notify("ganforge_log", step=step, metrics=logged)

    def on_sample_written(self, ctx: RunContext, path: Path) -> None:  # type: ignore[override]
        ctx.notify("ganforge_sample_written", step=ctx.step, path=path)

    def on_checkpoint_saved(self, ctx: RunContext,  # type: ignore[override]
                            path: Path) -> None:
        ctx.notify("ganforge_checkpoint_saved", step=ctx.step, path=path)

    def on_train_end(self, ctx: RunContext, interrupted: bool) -> None:  # type: ignore[override]
        if not interrupted:
            ctx.notify("ganforge_run_finished", run_dir=ctx.dirs.root, step=ctx.step)


class StopVoting(Callback):
    """After every step, every rank posts whether it was asked to stop (a signal, or a
    callback's :meth:`~ganforge.core.callback.CallbackContext.request_stop`) and takes the stop
    all ranks agreed on (one process: at once; under torchrun: one step later, see
    ``stopping.py``). Due on every step, it reads nothing from the device."""

    every = 1
    host_sync = False

    def __init__(self) -> None:
        super().__init__()
        self._vote: StopVote | None = None

    def on_train_start(self, ctx: RunContext) -> None:  # type: ignore[override]
        self._vote = StopVote(ctx.dist)
        ctx.on_close(self._close)

    def _close(self) -> None:
        if self._vote is not None:
            self._vote.close()

    def on_step_end(self, ctx: RunContext, step: int) -> None:  # type: ignore[override]
        assert self._vote is not None
        agreed = self._vote.vote(ctx.signal or (CALLBACK_STOP if ctx.stop_asked else None))
        if agreed or step >= ctx.recipe.run.steps:
            # The loop ends here on every rank: wait for the vote still in flight (never
            # after an error, see StopVote.finish).
            later = self._vote.finish()
            agreed = agreed or later
        if agreed == CALLBACK_STOP:
            ctx.agree_stop(None)
        elif agreed:
            ctx.agree_stop(agreed)
