"""The periodic work of a run, as callbacks the trainer runs on the steps where they are due.

Each callback says when it is due (:meth:`Periodic.due`: every ``every`` steps and at the
last step) and does its work when called with the trainer and the progress display. Due
steps are the only steps that synchronise with the host; before any callback runs on such
a step, the trainer checks the divergence watch (a sync it pays for anyway).

Order on a step where several are due: log, evaluate, sample, checkpoint (so a checkpoint
holds the best metric of its own step's evaluation).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import TrainingError
from ..files import writing
from ..seeds import derive_seed
from .progress import TrainingProgress
from .resume_point import resume_checkpoint

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


def component_figures(components: dict[str, Any], taken: dict[str, float]
                      ) -> dict[str, float]:
    """The extra figures every component returns (:meth:`Component.figures`), read back
    as floats; a name the trainer already logs is prefixed with the component's table."""
    figures: dict[str, float] = {}
    for table, component in components.items():
        for name, value in component.figures().items():
            key = name if name not in taken and name not in figures else f"{table}/{name}"
            figures[key] = float(value.detach().float().item() if isinstance(value, torch.Tensor)
                                 else value)
    return figures


class Periodic:
    """Due every ``every`` steps and at the last step; ``every = 0`` means never."""

    every: int = 0

    def due(self, step: int, last: bool) -> bool:
        return bool(self.every) and (step % self.every == 0 or last)

    def restart(self, step: int) -> None:
        """The run goes on from ``step`` after a rollback (default: nothing to reset)."""

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
        step_ = trainer.train_step
        trainer.metrics.update({f"lr/{name}": rate
                                for name, rate in step_.learning_rates.items()})
        if trainer.experiment.grad_scalers:  # fp16: updates skipped for overflow, so far
            skipped_d, skipped_g = step_.skipped.tolist()
            trainer.metrics.update({"fp16/skipped_d": float(skipped_d),
                                    "fp16/skipped_g": float(skipped_g)})
        trainer.metrics.update({f"reg/{label}": float(value.float().item())
                                for label, value in step_.penalties.items()})
        trainer.metrics.update(component_figures(trainer.experiment.components(),
                                                 trainer.metrics))
        trainer.log.scalars(step, trainer.metrics)
        trainer.logged.update(trainer.metrics)
        progress.logged(step, trainer.metrics)
        trainer.losses.reset()
        self.restart(step)


class Evaluate(Periodic):
    """Runs the recipe's metrics (rank 0) and keeps ``best-<label>.safetensors`` when the
    chosen metric improves; skipped, or interrupted between batches, once a stop is
    requested."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._evaluator: Any = None

    def __call__(self, trainer: Trainer, progress: TrainingProgress) -> None:
        if not trainer.dist.is_main or trainer.stop_requested():
            return
        values = self.evaluate(trainer, progress, trainer.stop_requested)
        if values:
            trainer.log.scalars(trainer.step, values)
            trainer.logged.update(values)
            trainer.metrics.update(values)

    def evaluate(self, trainer: Trainer, progress: TrainingProgress,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """Run the recipe's metrics now; keep ``best-<label>.safetensors`` when the chosen
        metric improves. Returns the values logged (``eval/<label>``, ``eval/seconds``), or
        nothing when ``should_stop`` (asked between batches) interrupted the evaluation."""
        from ..evaluation.evaluator import EvaluationInterrupted, Evaluator

        if self._evaluator is None:
            metrics = {label: (choice.short, choice.create(trainer.registry))
                       for label, choice in trainer.recipe.metrics.items()}
            self._evaluator = Evaluator(metrics, trainer.dataset,
                                        trainer.recipe["dataset"].to_table(), trainer.device,
                                        classes=trainer.experiment.classes,
                                        registry=trainer.registry)
        started = time.perf_counter()
        try:
            results = self._evaluator.run(
                trainer.sampling_generator, trainer.step, should_stop=should_stop,
                generator_label="ema" if trainer.recipe.ema.enabled else "raw")
        except EvaluationInterrupted:
            progress.note(f"step {trainer.step}: evaluation interrupted by the stop request")
            return {}
        values = {f"eval/{r.label}": r.value for r in results}
        values["eval/seconds"] = time.perf_counter() - started
        for result in results:
            progress.note(f"step {trainer.step}: {result.summary()}")
            for warning in result.warnings:
                progress.note(f"step {trainer.step}: warning: {warning}")
            trainer.log.evaluation(trainer.step, {
                "label": result.label, "metric": result.metric, "value": result.value,
                "higher_is_better": result.higher_is_better, "extra": result.extra,
                "protocol": result.protocol, "warnings": list(result.warnings)})
        chosen = next(r for r in results if r.label == trainer.recipe.best_metric)
        # A non-finite value is never the best, and never blocks a finite one.
        better = math.isfinite(chosen.value) and (
            trainer.best is None or not math.isfinite(trainer.best["value"]) or (
                chosen.value > trainer.best["value"] if chosen.higher_is_better
                else chosen.value < trainer.best["value"]))
        if better:
            previous = trainer.best
            trainer.best = {"label": chosen.label, "value": chosen.value, "step": trainer.step}
            try:
                trainer.save_checkpoint(trainer.dirs.best_checkpoint(chosen.label))
            except TrainingError as exc:
                # Rank 0 alone evaluates: it must not stop alone (the other ranks would wait
                # at their next collective). The next periodic checkpoint, agreed by all
                # ranks, stops the run if the state is still non-finite.
                trainer.best = previous
                progress.note(f"{exc}; best-{chosen.label} not updated")
        return values


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


class DivergencePolicy:
    """Runs first on every step where other work is due (a sync paid for anyway): reads the
    divergence watch, agreed by every rank, and stops the run or rolls it back to the newest
    checkpoint (``run.on_divergence``); every rollback is logged in ``rollbacks.jsonl``."""

    def rolled_back(self, trainer: Trainer, progress: TrainingProgress) -> bool:
        """Check the divergence watch (every rank agrees): stop the run, or roll back and
        return True (``run.on_divergence``); False when nothing diverged."""
        diverged = self._check_divergence(trainer)
        if diverged is None:
            return False
        self._on_divergence(trainer, *diverged, progress)
        return True

    def _check_divergence(self, trainer: Trainer) -> tuple[str, int] | None:
        """The earliest divergence seen by any rank (agreed by all ranks)."""
        mine = trainer.train_step.watch.check()
        if not trainer.dist.enabled:
            return mine
        order = ("discriminator", "generator")
        code = torch.tensor([-1 if mine is None else mine[1],
                             -1 if mine is None else order.index(mine[0])],
                            device=trainer.device)
        seen = [tuple(t.tolist()) for t in trainer.dist.gather(code) if t[0] >= 0]
        if not seen:
            return None
        step, network = min(seen)
        return order[int(network)], int(step)

    def _on_divergence(self, trainer: Trainer, network: str, first_bad: int,
                       progress: TrainingProgress) -> None:
        """Stop the run, or roll back to the newest checkpoint and go on with fresh batches
        and latents (``run.on_divergence``); every rollback is logged."""
        run = trainer.recipe.run
        checkpoint = resume_checkpoint(trainer.dirs.checkpoints)  # refused: stops
        what = (f"the {network} diverged at step {first_bad}: non-finite loss or gradient "
                f"(detected at step {trainer.step})")
        if run.on_divergence == "stop" or checkpoint is None or \
                trainer.rollbacks >= run.max_rollbacks:
            reason = ("" if run.on_divergence == "stop" else
                      "; no checkpoint to roll back to" if checkpoint is None else
                      f"; {trainer.rollbacks} rollbacks already (run.max_rollbacks)")
            keep = f"; the last checkpoint {checkpoint} holds finite state" if checkpoint else ""
            raise TrainingError(f"{what}{reason}; the run stopped{keep}")
        # Counters that describe this whole run, not the restored state, survive the rollback.
        detected, batches_seen = trainer.step, trainer.batches_seen
        rollbacks, best = trainer.rollbacks, trainer.best
        trainer.restore(checkpoint)
        trainer.rollbacks, trainer.best = rollbacks + 1, best
        trainer._session_start = time.perf_counter()  # restore() reloaded the elapsed time
        trainer.losses.reset()
        # Go on past the batches that diverged, with latents the failed attempt did not use
        # (and, under torchrun, different on every rank).
        trainer.batches_seen = batches_seen
        trainer.latent_rng.manual_seed(derive_seed(trainer.recipe.run.seed, "rollback",
                                                trainer.rollbacks, trainer.dist.rank))
        record = {"step": trainer.step, "rollback": trainer.rollbacks, "network": network,
                  "first_bad_step": first_bad, "detected_at": detected,
                  "checkpoint": checkpoint.name}
        if trainer.dist.is_main:
            with writing(trainer.dirs.rollbacks), \
                    open(trainer.dirs.rollbacks, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        progress.note(f"{what}; rolled back to {checkpoint.name} "
                      f"(rollback {trainer.rollbacks} of at most {run.max_rollbacks})")


def default_callbacks(trainer: Trainer, start: int) -> list[Any]:
    """The periodic work of every run, in the order it runs on a step."""
    run = trainer.recipe.run
    if trainer.dist.is_main and trainer.recipe.eval.every:
        for choice in trainer.recipe.metrics.values():
            # imported reference statistics (FID's reference_stats) are read and checked
            # now, so a missing or bad file is one line before the first step, not hours in
            choice.create(trainer.registry).reference_file()
    return [LogLosses(run.log_every, start), Evaluate(trainer.recipe.eval.every),
            WriteSamples(run.sample_every), SaveCheckpoint(run.checkpoint_every)]

