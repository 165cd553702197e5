"""Running a sweep plan: every run in its own directory, resumable, optionally parallel.

A run that finished has a ``done.json`` and is skipped; one with a checkpoint resumes from
it; one interrupted before its first checkpoint (nothing resumable: only partial logs and
samples) starts again. ``jobs > 1`` runs variants in separate processes: one per GPU when
there are several, otherwise CPU processes sharing the cores.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import attrs

from ..training.checkpoint import latest_checkpoint
from .plan import PlannedRun, SweepPlan

DONE = "done.json"


@attrs.frozen
class RunOutcome:
    """What happened to one planned run in this invocation."""

    variant: str
    seed: int
    run_dir: Path
    status: str  # "finished", "skipped" (finished earlier), "failed"
    seconds: float = 0.0
    error: str = ""


def run_state(run: PlannedRun) -> str:
    """``done``, ``resumable`` or ``new`` (nothing worth keeping)."""
    if (run.run_dir / DONE).exists():
        return "done"
    if latest_checkpoint(run.run_dir / "checkpoints") is not None:
        return "resumable"
    return "new"


def _train_one(recipe_toml: str, run_dir: str, device: str | None, threads: int) -> float:
    """Train one resolved recipe (in this or a worker process); returns seconds taken."""
    import tomllib

    import torch

    from ..plugins import load_plugins
    from ..recipe import apply_overrides, build_recipe
    from ..training import train

    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    plugins = load_plugins()
    table = tomllib.loads(recipe_toml)
    if device:
        table = apply_overrides(table, [f'run.device="{device}"'])
    recipe = build_recipe(table, plugins.registry, source=run_dir)
    folder = Path(run_dir)
    resumable = latest_checkpoint(folder / "checkpoints") is not None
    if not resumable and folder.exists():
        shutil.rmtree(folder)  # interrupted before its first step checkpoint: start again
    result = train(recipe, plugins, folder, resume=resumable, progress=False)
    if result.interrupted or result.step < recipe.run.steps:
        raise KeyboardInterrupt  # stopped early (Ctrl-C): not done; the next run resumes it
    seconds = time.perf_counter() - started
    (folder / DONE).write_text(json.dumps({"step": result.step, "seconds": seconds,
                                           "skipped_images": result.skipped_images}))
    return seconds


def _devices(jobs: int) -> list[str | None]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 1:
        return [f"cuda:{i % count}" for i in range(jobs)]
    return [None] * jobs


def run_plan(plan: SweepPlan, jobs: int = 1,
             on_event: Callable[[RunOutcome, int, int], None] | None = None) -> list[RunOutcome]:
    """Run every unfinished run of ``plan``; ``on_event(outcome, done, total)`` reports
    progress. Failures are recorded and the other runs go on."""
    total = len(plan.runs)
    outcomes: list[RunOutcome] = []

    def report(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        if on_event:
            on_event(outcome, len(outcomes), total)

    pending = []
    for run in plan.runs:
        if run_state(run) == "done":
            report(RunOutcome(run.variant, run.seed, run.run_dir, "skipped"))
        else:
            pending.append(run)
    if jobs <= 1:
        for run in pending:
            started = time.perf_counter()
            try:
                _train_one(run.recipe.to_toml(), str(run.run_dir), None, 0)
                report(RunOutcome(run.variant, run.seed, run.run_dir, "finished",
                                  time.perf_counter() - started))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one failed variant must not stop the sweep
                report(RunOutcome(run.variant, run.seed, run.run_dir, "failed",
                                  time.perf_counter() - started, _one_line(exc)))
        return outcomes
    devices = _devices(jobs)
    threads = 0 if devices[0] else max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures: dict[Future[float], PlannedRun] = {}
        queue = list(pending)
        slot = 0

        def submit() -> None:
            nonlocal slot
            run = queue.pop(0)
            futures[pool.submit(_train_one, run.recipe.to_toml(), str(run.run_dir),
                                devices[slot % jobs], threads)] = run
            slot += 1

        while queue and len(futures) < jobs:
            submit()
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                run = futures.pop(future)
                try:
                    report(RunOutcome(run.variant, run.seed, run.run_dir, "finished",
                                      future.result()))
                except Exception as exc:
                    report(RunOutcome(run.variant, run.seed, run.run_dir, "failed",
                                      error=_one_line(exc)))
                if queue:
                    submit()
    return outcomes


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
