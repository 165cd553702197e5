"""Ganforge errors raised inside DataLoader worker processes, given back as one line.

PyTorch re-raises an exception from a worker in the main process as the same type, but
with a message of its own: ``"Caught BadImage in DataLoader worker process 0.\\nOriginal
Traceback (most recent call last): ..."`` followed by the worker's whole traceback. The
command line prints a :class:`~ganforge.core.errors.GanforgeError` one line per message line,
so a bad image would print twenty lines of traceback instead of the one line naming it.
:class:`WorkerErrorsUnwrapped` restores the original message; the worker's traceback stays
available to ``--debug`` as the exception's cause (:class:`WorkerTraceback`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ..core.errors import DataError, GanforgeError

T = TypeVar("T")

_ORIGINAL = "\nOriginal Traceback (most recent call last):\n"


class WorkerTraceback(Exception):
    """The traceback of an error raised in a loader worker, as PyTorch reported it: the
    cause of the unwrapped error, so ``--debug`` still shows where the worker failed."""


def _qualified_name(cls: type) -> str:
    """The exception's name as :mod:`traceback` writes it on the traceback's last line."""
    module = cls.__module__
    return cls.__qualname__ if module in ("__main__", "builtins") else \
        f"{module}.{cls.__qualname__}"


def unwrap_worker_error(exc: GanforgeError) -> GanforgeError:
    """``exc`` with its original message when PyTorch re-raised it from a loader worker
    (or its pin-memory thread); ``exc`` unchanged otherwise."""
    message = str(exc)
    if not message.startswith("Caught ") or _ORIGINAL not in message:
        return exc
    head, _, traceback = message.partition(_ORIGINAL)
    # The traceback ends with "module.Class: original message" (chained exceptions, if
    # any, come before it); the original message may itself span lines.
    marker = f"\n{_qualified_name(type(exc))}: "
    at = traceback.rfind(marker)
    if at >= 0:
        original = traceback[at + len(marker):].rstrip("\n")
    else:  # an unexpected layout: the traceback's last line is still the most useful one
        original = traceback.rstrip("\n").rpartition("\n")[2]
    exc.args = (original,)
    exc.__cause__ = WorkerTraceback(f"{head}{_ORIGINAL}{traceback}".rstrip("\n"))
    return exc


class WorkerErrorsUnwrapped(Iterator[T]):
    """Iterates ``batches`` (e.g. a DataLoader), re-raising ganforge errors from its
    workers with their original one-line message (:func:`unwrap_worker_error`).

    Every other attribute is the inner iterator's, so a DataLoader iterator's workers
    (``_workers``) can still be shut down (``_shutdown_workers``) through the wrapper.
    """

    def __init__(self, batches: Iterable[T]) -> None:
        self._inner = iter(batches)

    def __iter__(self) -> WorkerErrorsUnwrapped[T]:
        return self

    def __next__(self) -> T:
        try:
            return next(self._inner)
        except GanforgeError as exc:
            unwrap_worker_error(exc)
            raise
        except RuntimeError as exc:
            died = _worker_death(exc)
            if died is None:
                raise
            raise died from exc

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (e.g. while copying): no infinite recursion
            raise AttributeError(name)
        return getattr(self._inner, name)


def _worker_death(exc: RuntimeError) -> DataError | None:
    """PyTorch's "DataLoader worker (pid(s) ...) exited unexpectedly" (a worker killed by
    a signal, e.g. a bus error while reading a damaged file) as one line, or None for any
    other error."""
    message = str(exc)
    if "DataLoader worker" not in message or "exited unexpectedly" not in message:
        return None
    first = message.splitlines()[0].rstrip(". ")
    return DataError(f"{first}: a data-loader worker died while reading the dataset (a "
                     "damaged file, or too little shared memory); run with "
                     "run.num_workers = 0 to see which image")
