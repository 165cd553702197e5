"""The periodic work of every run, as ordinary callbacks: log the losses, evaluate (and keep
the best checkpoint), write sample grids, write checkpoints.

Each is due every ``every`` steps and at the last step (:meth:`Callback.due`). Order on a
step where several are due: log, evaluate, sample, (the API's and the recipe's callbacks),
checkpoint, so a checkpoint holds the best metric of its own step's evaluation and the
state every other callback had after the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ...core.callback import Callback
from ...core.errors import TrainingError
from .meter import component_figures


class LogLosses(Callback):
    """Reads the loss means back and logs them with images/s, epoch and skipped images
    (``metrics.jsonl``, TensorBoard, ``ganforge_log``, the progress display)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._last_time, self._last_step = time.perf_counter(), 0

    def on_train_start(self, ctx: Any) -> None:
        self._last_time, self._last_step = time.perf_counter(), ctx.step

    def on_rollback(self, ctx: Any, step: int) -> None:
        """Measure images/s from ``step`` on."""
        self._last_time, self._last_step = time.perf_counter(), step

    def on_step_end(self, ctx: Any, step: int) -> None:
        run, now, train_step = ctx.recipe.run, time.perf_counter(), ctx.train_step
        mean_d, mean_g = ctx.dist.mean(ctx.losses.means(), ctx.experiment.device)
        metrics = {
            "loss_d": mean_d,
            "loss_g": mean_g,
            "images_per_s": (step - self._last_step) * run.batch_size
            / max(now - self._last_time, 1e-9),
            "epoch": step * run.d_steps * run.batch_size / len(ctx.experiment.dataset),
            "skipped_images": float(ctx.skipped_images),
            "elapsed_s": ctx.elapsed_s(),
        }
        metrics.update({f"lr/{name}": rate for name, rate in train_step.learning_rates.items()})
        if ctx.experiment.grad_scalers:  # fp16: updates skipped for overflow, so far
            skipped_d, skipped_g = train_step.skipped.tolist()
            metrics.update({"fp16/skipped_d": float(skipped_d),
                            "fp16/skipped_g": float(skipped_g)})
        metrics.update({f"reg/{label}": float(value.float().item())
                        for label, value in train_step.penalties.items()})
        metrics.update(component_figures(ctx.experiment.components(), metrics))
        ctx.metrics.clear()  # a new log step: the last metrics are these
        ctx.log.scalars(step, metrics)
        ctx.show_metrics(step, metrics)
        ctx.losses.reset()
        self.on_rollback(ctx, step)


class Evaluate(Callback):
    """Runs the recipe's metrics (rank 0) and keeps ``best-<label>.safetensors`` when the
    chosen metric improves; skipped, or interrupted between batches, once a stop is
    requested."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._evaluator: Any = None

    def on_train_start(self, ctx: Any) -> None:
        if ctx.is_main and self.every:
            for choice in ctx.recipe.metrics.values():
                # imported reference statistics (FID's reference_stats) are read and checked
                # now, so a missing or bad file is one line before the first step, not hours in
                choice.create(ctx.registry).reference_file()

    def on_step_end(self, ctx: Any, step: int) -> None:
        if not ctx.is_main or ctx.stop_requested:
            return
        values = self.evaluate(ctx, ctx, lambda: ctx.stop_requested)
        if values:
            ctx.log.scalars(step, values)

    def evaluate(self, ctx: Any, progress: Any,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """Run the recipe's metrics now; keep ``best-<label>.safetensors`` when the chosen
        metric improves. ``ctx``: the callback context (or anything with its ``recipe``,
        ``registry``, ``experiment``, ``step``, ``log``, ``dirs``, ``best`` and
        ``save_checkpoint``); ``progress``: where notes go (``note``). Returns the values
        to log (``eval/<label>``, ``eval/seconds``), or nothing when ``should_stop``
        (asked between batches) interrupted the evaluation."""
        from ...evaluation.evaluator import EvaluationInterrupted, Evaluator
        from ..building import build_metrics, extractor_builder

        experiment, recipe, step = ctx.experiment, ctx.recipe, ctx.step
        if self._evaluator is None:
            self._evaluator = Evaluator(
                build_metrics(recipe.metrics, ctx.registry), experiment.dataset,
                recipe["dataset"].to_table(), experiment.device, classes=experiment.classes,
                build_extractor=extractor_builder(ctx.registry, experiment.device))
        started = time.perf_counter()
        try:
            results = self._evaluator.run(
                experiment.sampling_generator, step, should_stop=should_stop,
                generator_label="ema" if recipe.ema.enabled else "raw")
        except EvaluationInterrupted:
            progress.note(f"step {step}: evaluation interrupted by the stop request")
            return {}
        values = {f"eval/{r.label}": r.value for r in results}
        values["eval/seconds"] = time.perf_counter() - started
        for result in results:
            progress.note(f"step {step}: {result.summary()}")
            for warning in result.warnings:
                progress.note(f"step {step}: warning: {warning}")
            ctx.log.evaluation(step, {
                "label": result.label, "metric": result.metric, "value": result.value,
                "higher_is_better": result.higher_is_better, "extra": result.extra,
                "protocol": result.protocol, "warnings": list(result.warnings)})
        chosen = next(r for r in results if r.label == recipe.best_metric)
        # A non-finite value is never the best, and never blocks a finite one.
        best = ctx.best
        better = math.isfinite(chosen.value) and (
            best is None or not math.isfinite(best["value"]) or (
                chosen.value > best["value"] if chosen.higher_is_better
                else chosen.value < best["value"]))
        if better:
            ctx.best = {"label": chosen.label, "value": chosen.value, "step": step}
            try:
                ctx.save_checkpoint(ctx.dirs.best_checkpoint(chosen.label))
            except TrainingError as exc:
                # Rank 0 alone evaluates: it must not stop alone (the other ranks would wait
                # at their next collective). The next periodic checkpoint, agreed by all
                # ranks, stops the run if the state is still non-finite.
                ctx.best = best
                progress.note(f"{exc}; best-{chosen.label} not updated")
        return values


class WriteSamples(Callback):
    """Writes the grid of the fixed latents (skipped once a stop is requested)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def on_step_end(self, ctx: Any, step: int) -> None:
        if not ctx.stop_requested:
            ctx.write_samples()


class SaveCheckpoint(Callback):
    """Writes the step's checkpoint and rotates older ones."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def on_step_end(self, ctx: Any, step: int) -> None:
        ctx.save_checkpoint()
