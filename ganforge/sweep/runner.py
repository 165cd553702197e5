"""Running a sweep plan: every run in its own directory, resumable, optionally parallel.

A run that finished has a ``done.json`` and is skipped; one with a checkpoint resumes from
it; one interrupted before its first checkpoint starts again at step 0 in the same folder
(its partial logs are truncated, nothing is deleted). ``jobs > 1`` runs variants in
separate processes: one per GPU when there are several (a finished run's GPU goes to the
next run), otherwise CPU processes sharing the cores. CPU results depend on the number of
threads, which ``jobs`` divides: it is recorded in every checkpoint and in ``done.json``.

One ``ganforge ablate`` at a time works in a sweep directory: the parent holds the sweep's
lock, every worker holds a shared lock on ``.workers.lock`` (so a rerun refuses while
orphaned workers of an earlier one still run), and workers get SIGTERM when their parent
dies (Linux), which stops them cleanly after their current step with a checkpoint.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import RunDirectoryBusy
from ..io.checkpoint_names import latest_checkpoint
from ..io.files import write_text_atomic
from ..training.run_dir import FolderLock, RunDirectory
from .plan import PlannedRun, SweepPlan

DONE = "done.json"
#: Held shared by every worker process of a sweep (see the module docstring).
WORKERS_LOCK = ".workers.lock"
_PR_SET_PDEATHSIG = 1


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
    try:
        # From its newest checkpoint, or from step 0 in the same folder when it has none yet;
        # a fresh run is simply started (no "--resume: no checkpoint" note for it).
        result = train(recipe, plugins, folder, resume=RunDirectory(folder).has_run(),
                       progress=False)
        if result.interrupted or result.step < recipe.run.steps:
            raise KeyboardInterrupt  # stopped early (Ctrl-C): not done; the next run resumes it
        seconds = time.perf_counter() - started
        write_text_atomic(folder / DONE, json.dumps({
            "step": result.step, "seconds": seconds, "skipped_images": result.skipped_images,
            "threads": torch.get_num_threads()}))
    finally:
        _exit_if_orphaned()  # after the clean stop its SIGTERM asked for
    return seconds


def _start_worker(sweep_dir: str) -> None:
    """Initialise a ``--jobs`` worker: hold the sweep's workers lock (shared) for the
    worker's life, and end with its parent (SIGTERM, a clean stop) instead of living on as
    an orphan."""
    global _workers_lock_fd, _parent_pid
    parent = _parent_pid = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the workers lock still guards reruns
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)
    _workers_lock_fd = os.open(Path(sweep_dir) / WORKERS_LOCK,
                               os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(_workers_lock_fd, fcntl.LOCK_SH)


_workers_lock_fd: int | None = None
#: The sweep process that started this worker (None outside ``--jobs`` workers).
_parent_pid: int | None = None


def _exit_if_orphaned() -> None:
    """In a ``--jobs`` worker whose sweep died: exit now. The pool would otherwise wait
    forever for its next task on a queue whose other ends its sibling workers hold."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(128 + signal.SIGTERM)


def lock_sweep(sweep_dir: Path) -> FolderLock:
    """Take the sweep directory's lock (held by the caller for the whole sweep); refused
    while another ``ganforge ablate`` or orphaned workers of one still run there."""
    lock = FolderLock(sweep_dir, "sweep directory").acquire()
    fd = os.open(sweep_dir / WORKERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.release()
        raise RunDirectoryBusy(f"sweep directory {sweep_dir}: worker processes of an earlier "
                               "ganforge ablate still run there; wait for them to end") \
            from None
    finally:
        os.close(fd)  # only a probe: this sweep's own workers take it shared
    return lock


def _devices(jobs: int) -> list[str | None]:
    """The device of each of the ``jobs`` slots: one GPU each when there are several."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 1:
        return [f"cuda:{i % count}" for i in range(jobs)]
    return [None] * jobs


def run_plan(plan: SweepPlan, jobs: int = 1,
             on_event: Callable[[RunOutcome, int, int], None] | None = None,
             source: dict[str, Any] | None = None) -> list[RunOutcome]:
    """Run every unfinished run of ``plan``, holding the sweep directory's lock; writes
    ``sweep.json`` (the runs, and ``source``: how the plan was made) first.
    ``on_event(outcome, done, total)`` reports progress. Failures are recorded and the
    other runs go on."""
    with lock_sweep(plan.out):
        write_text_atomic(plan.out / "sweep.json", json.dumps({
            **(source or {}),
            "runs": [{"variant": r.variant, "seed": r.seed, "overrides": r.overrides,
                      "run_dir": str(r.run_dir)} for r in plan.runs]}, indent=1))
        return _run_unlocked(plan, jobs, on_event)


def _run_unlocked(plan: SweepPlan, jobs: int,
                  on_event: Callable[[RunOutcome, int, int], None] | None
                  ) -> list[RunOutcome]:
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
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                             initargs=(str(plan.out),)) as pool:
        futures: dict[Future[float], tuple[PlannedRun, int]] = {}
        queue = list(pending)
        free = list(range(jobs))  # slots (and so devices) not in use

        def submit() -> None:
            run, slot = queue.pop(0), free.pop(0)
            futures[pool.submit(_train_one, run.recipe.to_toml(), str(run.run_dir),
                                devices[slot], threads)] = (run, slot)

        while queue and free:
            submit()
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                run, slot = futures.pop(future)
                free.append(slot)  # a finished run's device goes to the next run
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
