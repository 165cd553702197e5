"""The trainer's real batches: a data loader (or a dataset held on the device) walked in
the order :class:`~ganforge.datasets.order.EpochBatchSampler` gives, from where the run
stands; loader workers that survive outside stop signals and report their errors as one
line."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..core.interfaces import Dataset
from ..core.seeds import derive_seed
from ..datasets.decoding import to_unit_range
from ..datasets.order import EpochBatchSampler
from ..datasets.policy import ImageBatch, collate_images
from ..datasets.worker_errors import WorkerErrorsUnwrapped
from ..datasets.worker_signals import die_with_parent, obey_only_the_parent


def seed_worker(worker_id: int) -> None:
    """Start a loader worker: seed Python's and NumPy's RNGs from torch's per-worker seed,
    leave stopping to the trainer (:func:`obey_only_the_parent`) and die with it
    (:func:`die_with_parent`: a killed trainer leaves no worker behind, nor a traceback
    from one in its log)."""
    parent = os.getppid()
    obey_only_the_parent()
    die_with_parent(parent)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def shutdown_workers(batches: Iterator[ImageBatch]) -> None:
    """Stop the loader worker processes behind an iterator from :func:`real_batches` now,
    not when it is garbage-collected (nothing to do without workers)."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # a multi-worker DataLoader's
    if shutdown is not None:
        shutdown()


#: The share of the device's free memory (CUDA) or of the host's available memory (CPU)
#: that a ``residency = "auto"`` dataset may take on the device.
DEVICE_SHARE = 0.25


def available_memory(device: torch.device) -> int:
    """Bytes free on ``device``: CUDA's free memory, else the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - a platform without sysconf
        return 0


def resident_bytes(dataset: Dataset) -> int:
    """What holding ``dataset`` whole may take at most: float32 images of its shape."""
    channels, height, width = dataset.image_spec.shape()
    return len(dataset) * channels * height * width * 4


def holds_on_device(dataset: Dataset, device: torch.device) -> bool:
    """Whether the trainer indexes ``dataset`` on ``device`` with no loader: always for
    ``residency == "device"``; for ``"auto"`` when :func:`resident_bytes` is at most
    :data:`DEVICE_SHARE` of :func:`available_memory`."""
    if dataset.residency == "device":
        return True
    return dataset.residency == "auto" and \
        resident_bytes(dataset) <= DEVICE_SHARE * available_memory(device)


def _resident_batches(images: torch.Tensor, labels: torch.Tensor | None,
                      sampler: EpochBatchSampler, device: torch.device
                      ) -> Iterator[ImageBatch]:
    images = images.to(device)
    scale = images.dtype == torch.uint8
    labels = labels.to(device) if labels is not None else None
    for indices in sampler:
        index = torch.tensor(indices, device=device)
        batch = images.index_select(0, index)
        yield ImageBatch(to_unit_range(batch) if scale else batch,
                         labels=labels.index_select(0, index) if labels is not None else None)


def real_batches(dataset: Dataset, batch_size: int, seed: int, start_batch: int, *,
                 num_workers: int, device: torch.device, pin_memory: bool,
                 persistent_workers: bool = True, prefetch_factor: int = 2,
                 rank: int = 0, world_size: int = 1) -> Iterator[ImageBatch]:
    """An endless iterator over batches of real images, from global batch ``start_batch``.

    A dataset held whole on the device (:func:`holds_on_device`) is indexed there with no
    loader; any other goes through a ``DataLoader`` with the given settings. A ganforge
    error raised in a loader worker (a bad image under ``on_error = "fail"``) reaches the
    caller as its original one-line message, not as the worker's traceback.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, start_batch, rank, world_size)
    if holds_on_device(dataset, device):
        resident = dataset.resident_images()
        if resident is not None:
            return _resident_batches(resident, dataset.resident_labels(), sampler, device)
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
                            generator=torch.Generator().manual_seed(
                                derive_seed(seed, "loader workers")))
        return WorkerErrorsUnwrapped(loader)
