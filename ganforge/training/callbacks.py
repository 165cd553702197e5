"""The periodic work of a run, as callbacks the trainer runs on the steps where they are due.

Each callback says when it is due (:meth:`Periodic.due`: every ``every`` steps and at the
last step) and does its work when called with the trainer and the progress display. Due
steps are the only steps that synchronise with the host; before any callback runs on such
a step, the trainer checks the divergence watch (a sync it pays for anyway).

Order on a step where several are due: log, evaluate, sample, checkpoint (so a checkpoint
holds the best metric of its own step's evaluation).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from .progress import TrainingProgress

if TYPE_CHECKING:
    from .trainer import Trainer

#: Checkpoint tensor names of :class:`LossMeter`'s state (``trainer/<name>``).
LOSS_SUMS = ("loss_sum_d", "loss_sum_g", "loss_count")


class LossMeter:
    """Sums of the D and G losses since the last log line, kept on the device (adding
    never synchronises). Checkpointed, so the first mean logged after a resume covers the
    same steps as in an uninterrupted run."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, device=device)
        self.count = 0

    def add(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        self.sums += torch.stack((loss_d, loss_g))
        self.count += 1

    def means(self) -> list[float]:
        """The mean D and G losses since the last reset (reads back: a host sync)."""
        return (self.sums / max(self.count, 1)).tolist()

    def reset(self) -> None:
        self.sums.zero_()
        self.count = 0

    def state(self) -> dict[str, torch.Tensor]:
        return {"trainer/loss_sum_d": self.sums[0], "trainer/loss_sum_g": self.sums[1],
                "trainer/loss_count": torch.tensor(self.count, dtype=torch.int64)}

    def load(self, saved: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state` (``trainer/`` section of a checkpoint, prefix removed);
        an older checkpoint without it starts from zero. Raises ``ValueError`` when the
        saved sums are not two finite numbers and a non-negative count."""
        if not saved:
            self.reset()
            return
        sum_d, sum_g, count = (saved.get(name) for name in LOSS_SUMS)
        sums_ok = all(t is not None and t.numel() == 1 and t.is_floating_point()
                      and bool(torch.isfinite(t).all()) for t in (sum_d, sum_g))
        if not sums_ok or count is None or count.numel() != 1 or count.is_floating_point() \
                or int(count) < 0:
            raise ValueError("trainer/ loss sums are not two finite numbers and a "
                             "non-negative count")
        assert sum_d is not None and sum_g is not None
        self.sums = torch.stack([sum_d.float(), sum_g.float()]).to(self.sums.device)
        self.count = int(count)


class Periodic:
    """Due every ``every`` steps and at the last step; ``every = 0`` means never."""

    every: int = 0

    def due(self, step: int, last: bool) -> bool:
        return bool(self.every) and (step % self.every == 0 or last)

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        raise NotImplementedError


class LogLosses(Periodic):
    """Reads the loss means back and logs them with images/s, epoch and skipped images
    (``metrics.jsonl``, TensorBoard, ``ganforge_log``, the progress display)."""

    def __init__(self, every: int, start: int) -> None:
        self.every = every
        self._last_time, self._last_step = time.perf_counter(), start

    def restart(self, step: int) -> None:
        """Measure images/s from ``step`` on (after a rollback)."""
        self._last_time, self._last_step = time.perf_counter(), step

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        run, step, now = trainer.recipe.run, trainer.step, time.perf_counter()
        mean_d, mean_g = trainer.dist.mean(trainer.losses.means(), trainer.device)
        trainer.metrics = {
            "loss_d": mean_d,
            "loss_g": mean_g,
            "images_per_s": (step - self._last_step) * run.batch_size
            / max(now - self._last_time, 1e-9),
            "epoch": step * run.d_steps * run.batch_size / len(trainer.dataset),
            "skipped_images": float(trainer.skipped_count),
            "elapsed_s": trainer.elapsed_s(),
        }
        trainer.log.scalars(step, trainer.metrics)
        trainer.notify("ganforge_log", step=step, metrics=trainer.metrics)
        progress.logged(step, trainer.metrics)
        trainer.losses.reset()
        self.restart(step)


class Evaluate(Periodic):
    """Runs the recipe's metrics (rank 0) and keeps ``best-<label>.safetensors``; skipped,
    or interrupted between batches, once a stop is requested."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        if not trainer.dist.is_main or trainer.stop_requested():
            return
        values = trainer.evaluate(progress, trainer.stop_requested)
        if values:
            trainer.log.scalars(trainer.step, values)
            trainer.notify("ganforge_log", step=trainer.step, metrics=values)
            trainer.metrics.update(values)


class WriteSamples(Periodic):
    """Writes the grid of the fixed latents (skipped once a stop is requested)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        if not trainer.stop_requested():
            trainer.write_samples()


class SaveCheckpoint(Periodic):
    """Writes the step's checkpoint and rotates older ones."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        trainer.save_checkpoint()


def default_callbacks(trainer: Trainer, start: int) -> list[Any]:
    """The periodic work of every run, in the order it runs on a step."""
    run = trainer.recipe.run
    return [LogLosses(run.log_every, start), Evaluate(trainer.recipe.eval.every),
            WriteSamples(run.sample_every), SaveCheckpoint(run.checkpoint_every)]

