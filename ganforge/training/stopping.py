"""Stopping a run cleanly: Ctrl-C (SIGINT) and SIGTERM, on one process or many.

The first SIGINT or SIGTERM asks the trainer to stop after the current step, write a
checkpoint and exit with ``128 + signal`` (130 for Ctrl-C, 143 for the SIGTERM that SLURM
and most schedulers send before they kill a job). A second signal aborts at once.

Under ``torchrun`` two details matter:

- One stop can reach a worker twice. torchrun (torch 2.15) starts each worker in a session
  of its own and forwards a signal it receives to it; when something else signals the
  workers as well, such as SLURM, which signals every process of a job step at its time
  limit, each worker gets the launcher's copy a moment after its own. So under torchrun a
  repeat within :data:`FORWARDED_WINDOW_S` of the first signal is taken as a copy, not as a
  second Ctrl-C.
- Ranks see the signal at slightly different steps (on other nodes, perhaps not at all).
  :class:`StopVote` makes them agree without ever waiting: after every step each rank posts
  its flag in an asynchronous all-reduce (maximum) over a small CPU (gloo) group and reads
  the result of the previous step's vote, which has long completed. All ranks thus stop
  after the same step, at most one step after the first signal, well inside the launcher's
  shutdown timeout (30 s by default) before it sends SIGKILL.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

import torch
import torch.distributed as dist

from ..core.errors import Aborted
from .distributed import COLLECTIVE_TIMEOUT, DistributedContext

#: Signals that request a clean stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds within which a repeated signal under torchrun is the launcher's forwarded copy.
FORWARDED_WINDOW_S = 2.0


def under_launcher() -> bool:
    """True when torchrun (torch.distributed.elastic) started this process."""
    return "TORCHELASTIC_RUN_ID" in os.environ


class StopRequest:
    """Catches the stop signals while a run trains (a context manager; main thread only,
    elsewhere it catches nothing). ``signum`` is the first signal received, or None."""

    def __init__(self, forwarded_window_s: float | None = None) -> None:
        self.signum: int | None = None
        self._since = 0.0
        self._window = (forwarded_window_s if forwarded_window_s is not None else
                        FORWARDED_WINDOW_S if under_launcher() else 0.0)
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop (what the signal handler does; also for an agreed stop)."""
        if self.signum is None:
            self._since = time.monotonic()  # first: a second signal may arrive at any point
            self.signum = int(signum)

    def agree(self, signum: int) -> None:
        """Take the stop all ranks agreed on (the same signal on every rank)."""
        self.request(signum)
        self.signum = int(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.request(signum)
        elif time.monotonic() - self._since > self._window:
            raise Aborted(signum)  # a second signal: abort now, exit 128 + that signal

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


class StopVote:
    """Ranks agree on stopping after the same step without a blocking collective.

    :meth:`vote` is called by every rank after every step, in the same order; it posts the
    signal this rank received (0 for none) and returns the all-ranks result (the largest
    signal number; 0 for none) of the previous call. :meth:`finish` waits for the last vote
    (call it on every rank when the loop ends, never after an error).
    """

    def __init__(self, context: DistributedContext) -> None:
        self.enabled = context.enabled
        # A group of its own on gloo: CPU tensors, no CUDA stream touched, and never
        # interleaved with DDP's collectives (so multi-node runs need gloo to connect too:
        # GLOO_SOCKET_IFNAME on machines with several network interfaces).
        self._group: Any = (dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
                       if self.enabled else None)
        self._pending: tuple[dist.Work, torch.Tensor] | None = None

    def _result(self) -> int:
        if self._pending is None:
            return 0
        work, flag = self._pending
        self._pending = None
        work.wait()
        return int(flag.item())

    def vote(self, signum: int | None) -> int:
        """Post this step's signal (None: none); return the previous step's agreed one."""
        if not self.enabled:
            return signum or 0
        decided = self._result()
        flag = torch.tensor([signum or 0], dtype=torch.int32)
        work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        assert work is not None
        self._pending = (work, flag)
        return decided

    def finish(self) -> int:
        """Wait for the last vote; the signal any rank received in it, or 0."""
        return self._result()

    def close(self) -> None:
        """Release the vote's process group, unless a vote is still in flight (after an
        error mid-run): then it is left to the process's exit."""
        if self._group is not None and self._pending is None:
            dist.destroy_process_group(self._group)
            self._group = None
