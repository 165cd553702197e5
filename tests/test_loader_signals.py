"""Data-loader workers survive the stop signals that reach them from outside (a terminal's
Ctrl-C, torchrun, a scheduler), so the trainer can finish its step, but still end when
their own process shuts them down: no orphan, no hang at exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

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
    next(batches)
    workers = batches._workers
    for w in workers:
        outside_signal(w.pid, signal.SIGTERM)
        outside_signal(w.pid, signal.SIGINT)
    time.sleep(0.5)
    assert all(w.is_alive() for w in workers)
    for _ in range(20):  # more than the prefetched batches: the workers still work
        assert next(batches).images.shape == (8, 3, 16, 16)
    batches._shutdown_workers()
    assert not any(w.is_alive() for w in workers)


def test_the_parents_sigterm_still_ends_a_worker(plugins) -> None:
    batches = loader(plugins)
    next(batches)
    worker = batches._workers[0]
    # From this process, the worker's parent: it ends, and PyTorch's SIGCHLD handler in
    # this process reports the loss of a live loader's worker.
    with pytest.raises(RuntimeError, match="killed by signal: Terminated"):
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(timeout=10)
        time.sleep(1)
    worker.join(timeout=10)
    assert worker.exitcode == -signal.SIGTERM
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
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code, how], capture_output=True,
                                text=True, timeout=60)
        # An uncaught KeyboardInterrupt ends Python by SIGINT (-2).
        assert result.returncode == (0 if how == "normal" else -signal.SIGINT), result.stderr
        assert time.monotonic() - started < 30
