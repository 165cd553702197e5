"""Looking at a dataset before training on it: count, decode errors, real-image grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch.utils.data import DataLoader, Subset

from ..interfaces import Dataset
from .decoding import BadImage, to_unit_range
from .policy import Skipped
from .prepared import uint8_item
from .worker_errors import WorkerErrorsUnwrapped


@attrs.frozen
class ScanReport:
    """How many images there are, how many were decoded, and which failed (key, reason)."""

    count: int
    scanned: int
    bad: list[tuple[str, str]]


class _Probe(torch.utils.data.Dataset):
    """Decodes item i and returns None, or (key, reason) when it is bad, whatever the policy."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, str] | None:
        try:
            item = uint8_item(self.dataset, index)
        except BadImage as exc:
            return (f"#{index}", str(exc))
        return (item.key, item.reason) if isinstance(item, Skipped) else None


def _as_list(items: Sequence[Any]) -> list[Any]:
    return list(items)


def scan_dataset(dataset: Dataset, limit: int = 0, workers: int | None = None,
                 progress: bool = True) -> ScanReport:
    """Decode the first ``limit`` images (0: all) on all cores and collect the bad ones."""
    from ..progress_bars import progress_bar

    count = len(dataset)
    scanned = min(limit, count) if limit else count
    workers = (os.cpu_count() or 1) if workers is None else workers
    loader = DataLoader(Subset(_Probe(dataset), range(scanned)), batch_size=64,
                        num_workers=workers, collate_fn=_as_list)
    bad: list[tuple[str, str]] = []
    with progress_bar("scanning", progress, transient=True) as bar:
        task = bar.add_task("scan", total=scanned)
        for results in WorkerErrorsUnwrapped(loader):
            bad.extend(r for r in results if r is not None)
            bar.advance(task, len(results))
    return ScanReport(count, scanned, bad)


def first_real_images(dataset: Dataset, n: int, seed: int) -> torch.Tensor:
    """The first ``n`` good images in the order a run with ``seed`` sees them, augmented
    as in training; bad images are passed over whatever the policy."""
    from .order import EpochBatchSampler

    order = next(iter(EpochBatchSampler(len(dataset), len(dataset), seed)))
    images: list[torch.Tensor] = []
    for index in order:
        try:
            item = uint8_item(dataset, index)
        except BadImage:
            continue
        if not isinstance(item, Skipped):
            images.append(to_unit_range(item))
        if len(images) == n:
            break
    batch = torch.stack(images)
    return dataset.augment(batch, torch.Generator().manual_seed(seed))
