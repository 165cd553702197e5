"""Signals and loader worker processes: workers that obey only their parent, die with it,
and a parent that turns stop signals into one clean interrupt.

A terminal's Ctrl-C reaches every process of its group, and a scheduler may SIGTERM any of
them: a worker killed that way makes its parent's next batch fail with a long traceback
(``ConnectionResetError`` from a torn queue). So a worker ignores SIGINT, and SIGTERM
unless its parent sent it (:func:`obey_only_the_parent`); and it asks the kernel to kill it
the moment its parent dies (:func:`die_with_parent`, Linux), instead of finding out at
PyTorch's next watchdog check (up to 5 s later) and printing a traceback into the log.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ..core.errors import Interrupted

#: prctl(2) options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library this process already has loaded (no search: ``find_library`` would
    run a subprocess in every worker)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def die_with_parent(parent: int | None = None) -> bool:
    """Have the kernel SIGKILL this process when its parent exits (Linux ``prctl``); True
    when set. ``parent`` is the parent's pid as the caller knew it: if it has already gone
    (we were re-parented before the call), the process ends now."""
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return False
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if parent is not None and os.getppid() != parent:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def parent_death_signal() -> int:
    """The signal this process gets when its parent dies (0: none), for tests."""
    libc = _libc()
    value = ctypes.c_int(0)
    if libc is None or libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) != 0:
        return 0
    return value.value


def obey_only_the_parent() -> None:
    """In a loader worker: ignore SIGINT, and SIGTERM unless the parent process sent it.

    A terminal's Ctrl-C, torchrun's forwarded signal and a scheduler's SIGTERM reach the
    workers too, and a worker killed by them makes the parent's next batch fail, while it
    still needs a batch or two to stop cleanly. The parent stops its workers itself; the
    SIGTERM that the DataLoader or ``multiprocessing`` sends them at shutdown comes from the
    parent and still ends the worker. Where the platform cannot tell who sent a signal (no
    ``sigwaitinfo``, e.g. macOS), only SIGINT is ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    # Blocked here, before any thread starts, so every thread inherits the mask and only
    # the waiter below receives SIGTERM.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                # SIGTERM's action is still the default: unblocked in this thread, the
                # signal sent again ends the process as it would have.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="ganforge-sigterm", daemon=True).start()


def loader_worker_init(_worker_id: int) -> None:
    """``worker_init_fn`` of ganforge's loaders outside training: obey only the parent and
    die with it."""
    parent = os.getppid()
    obey_only_the_parent()
    die_with_parent(parent)


class StopRequest:
    """A stop signal received while :func:`stop_signals_interrupt` is active: the code
    checks it at points where stopping is safe (:meth:`raise_if_requested`)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def raise_if_requested(self) -> None:
        """Raise :class:`~ganforge.core.errors.Interrupted` once a stop signal came."""
        if self.signum is not None:
            raise Interrupted(self.signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[StopRequest]:
    """Within the block, Ctrl-C or SIGTERM is recorded in the :class:`StopRequest` given
    to the block, which raises :class:`~ganforge.core.errors.Interrupted` where the code
    checks it, so its cleanup runs and the command prints one line and exits
    ``128 + signal``. The handler itself never raises: an exception raised wherever a
    signal lands (inside a fork handler, say) may be swallowed and printed as a traceback.
    A second stop signal ends the process at once with one line (files are written
    atomically, so nothing already written is lost; loader workers die with the process).
    In the main thread only; elsewhere the request never fires."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if request.signum is None:
            request.signum = signum
            return
        os.write(2, f"interrupted: aborted by a second {signal.Signals(signum).name}\n"
                 .encode())
        os._exit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
