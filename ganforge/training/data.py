"""The order in which the trainer sees real images: seeded per epoch, resumable by step.

Batch ``b`` of a run is a pure function of ``(seed, b)``: epoch ``b // batches_per_epoch``
is a permutation drawn from ``seed`` and the epoch number, and the last partial batch of
each epoch is dropped (``drop_last`` is always on) so every batch has the same shape. A
resumed run starts at the batch where the checkpoint stopped, so it sees exactly the
images the uninterrupted run saw. Under ``torch.distributed`` each of ``world_size`` ranks
takes its own slice of every global batch.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..datasets.decoding import to_unit_range
from ..datasets.policy import ImageBatch, collate_images
from ..datasets.worker_errors import WorkerErrorsUnwrapped
from ..errors import DataError
from ..interfaces import Dataset


class EpochBatchSampler:
    """Yields lists of indices forever, starting at global batch ``start``."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        global_batch = batch_size * world_size
        if size < global_batch:
            raise DataError(f"the dataset has {size} images, fewer than batch_size "
                            f"{batch_size}" + (f" x {world_size} ranks" if world_size > 1 else ""))
        self.size, self.batch_size, self.seed, self.start = size, batch_size, seed, start
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = size // global_batch

    def epoch_of(self, batch: int) -> int:
        """The epoch that global batch ``batch`` belongs to."""
        return batch // self.batches_per_epoch

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        width = self.batch_size * self.world_size
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        while True:
            epoch, offset = divmod(batch, self.batches_per_epoch)
            order = self._permutation(epoch)
            for i in range(offset, self.batches_per_epoch):
                yield order[i * width:(i + 1) * width][mine].tolist()
            batch = (epoch + 1) * self.batches_per_epoch


def seed_worker(worker_id: int) -> None:
    """Start a loader worker: seed Python's and NumPy's RNGs from torch's per-worker seed,
    and leave stopping to the trainer (:func:`obey_only_the_parent`)."""
    obey_only_the_parent()
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def obey_only_the_parent() -> None:
    """In a loader worker: ignore SIGINT, and SIGTERM unless the parent process sent it.

    A terminal's Ctrl-C, torchrun's forwarded signal and a scheduler's SIGTERM reach the
    workers too, and a worker killed by them makes the trainer's next batch fail, while it
    still needs a batch or two to stop cleanly. The trainer stops its workers itself; the
    SIGTERM that the DataLoader or ``multiprocessing`` sends them at shutdown comes from the
    parent and still ends the worker (a dead parent is noticed by PyTorch's watchdog).
    Where the platform cannot tell who sent a signal (no ``sigwaitinfo``, e.g. macOS), only
    SIGINT is ignored.
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


def shutdown_workers(batches: Iterator[ImageBatch]) -> None:
    """Stop the loader worker processes behind an iterator from :func:`real_batches` now,
    not when it is garbage-collected (nothing to do without workers)."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # a multi-worker DataLoader's
    if shutdown is not None:
        shutdown()


def _resident_batches(images: torch.Tensor, sampler: EpochBatchSampler,
                      device: torch.device) -> Iterator[ImageBatch]:
    images = images.to(device)
    for indices in sampler:
        index = torch.tensor(indices, device=device)
        yield ImageBatch(to_unit_range(images.index_select(0, index)))


def real_batches(dataset: Dataset, batch_size: int, seed: int, start_batch: int, *,
                 num_workers: int, device: torch.device, pin_memory: bool,
                 persistent_workers: bool = True, prefetch_factor: int = 2,
                 rank: int = 0, world_size: int = 1) -> Iterator[ImageBatch]:
    """An endless iterator over batches of real images, from global batch ``start_batch``.

    A dataset held whole on the device (``residency == "device"``) is indexed there with no
    loader; any other goes through a ``DataLoader`` with the given settings. A ganforge
    error raised in a loader worker (a bad image under ``on_error = "fail"``) reaches the
    caller as its original one-line message, not as the worker's traceback.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, start_batch, rank, world_size)
    if dataset.residency == "device":
        resident = dataset.resident_images()
        if resident is not None:
            return _resident_batches(resident, sampler, device)
    workers = num_workers > 0
    # The loader draws its workers' base seed from its own generator, not from torch's
    # global RNG, so starting (or resuming) a loader leaves the checkpointed RNG state
    # untouched.
    with warnings.catch_warnings():
        # More workers than cores: the recipe layer says so in one line (Recipe.notes),
        # instead of PyTorch's paragraph (at construction and when the workers start).
        warnings.filterwarnings("ignore", message="This DataLoader will create",
                                category=UserWarning)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                            collate_fn=collate_images, pin_memory=pin_memory,
                            persistent_workers=workers and persistent_workers,
                            prefetch_factor=prefetch_factor if workers else None,
                            worker_init_fn=seed_worker if workers else None,
                            generator=torch.Generator().manual_seed(seed))
        return WorkerErrorsUnwrapped(loader)
