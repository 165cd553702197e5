"""Data-loader workers survive the stop signals that reach them from outside (a terminal's
Ctrl-C, torchrun, a scheduler), so the trainer can finish its step, but still end when
their own process shuts them down: no orphan, no hang at exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from ganforge.training.data import real_batches

pytestmark = pytest.mark.skipif(not hasattr(signal, "sigwaitinfo"),
                                reason="needs sigwaitinfo (Linux) to tell senders apart")


def loader(plugins, workers: int = 1):
    dataset = plugins.registry.create("dataset", "synthetic",
                                      {"count": 64, "image_size": 16, "channels": 3})
    return real_batches(dataset, 8, 0, 0, num_workers=workers, device=torch.device("cpu"),
                        pin_memory=False)


def outside_signal(pid: int, sig: int) -> None:
    """Send ``sig`` from a process that is not the worker's parent (like a scheduler)."""
    subprocess.run(["kill", f"-{signal.Signals(sig).name[3:]}", str(pid)], check=True)


def test_workers_ignore_outside_signals_and_keep_delivering(plugins) -> None:
    batches = loader(plugins, workers=2)
    workers = batches._workers
    for _ in workers:  # batches come in order, one per worker: every worker has started
        next(batches)  # (and set up its signal handling) once it delivered one
    for w in workers:
        outside_signal(w.pid, signal.SIGTERM)
        outside_signal(w.pid, signal.SIGINT)
    for _ in range(20):  # more than the prefetched batches: the workers still work
        assert next(batches).images.shape == (8, 3, 16, 16)
    assert all(w.is_alive() for w in workers)
    batches._shutdown_workers()
    assert not any(w.is_alive() for w in workers)


def test_the_parents_sigterm_still_ends_a_worker(plugins) -> None:
    from torch.utils.data._utils.signal_handling import _error_if_any_worker_fails

    batches = loader(plugins)
    next(batches)
    worker = batches._workers[0]
    # PyTorch's SIGCHLD handler would report the lost worker at an arbitrary later
    # bytecode; the test asks for that report itself, after the worker has ended.
    handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        os.kill(worker.pid, signal.SIGTERM)  # from this process, the worker's parent
        # Returns once the worker has ended (no timing involved), leaving it unreaped so
        # that PyTorch's check can still see how it ended.
        os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)
        with pytest.raises(RuntimeError, match="killed by signal: Terminated"):
            _error_if_any_worker_fails()
        worker.join()
        assert worker.exitcode == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGCHLD, handler)
        batches._shutdown_workers()


def test_a_process_exits_promptly_with_a_loader_still_open() -> None:
    """multiprocessing terminates daemonic workers at exit with SIGTERM from the parent;
    a worker that ignored every SIGTERM would make this hang forever."""
    code = textwrap.dedent("""
        import sys, torch
        from ganforge import load_plugins
        from ganforge.training.data import real_batches
        plugins = load_plugins()
        dataset = plugins.registry.create("dataset", "synthetic",
                                          {"count": 64, "image_size": 16, "channels": 3})
        batches = real_batches(dataset, 8, 0, 0, num_workers=1,
                               device=torch.device("cpu"), pin_memory=False)
        next(batches)
        if sys.argv[1] == "error":
            raise KeyboardInterrupt
    """)
    for how in ("normal", "error"):
        # A hang is caught by the timeout (generous: a loaded machine imports torch slowly);
        # no assertion on how long the exit took.
        result = subprocess.run([sys.executable, "-c", code, how], capture_output=True,
                                text=True, timeout=300)
        # An uncaught KeyboardInterrupt ends Python by SIGINT (-2).
        assert result.returncode == (0 if how == "normal" else -signal.SIGINT), result.stderr
