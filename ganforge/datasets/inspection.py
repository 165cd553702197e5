"""Looking at a dataset before training on it: count, decode errors, labels, real-image
grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch.utils.data import DataLoader, Subset

from ..core.interfaces import Dataset
from .decoding import BadImage, to_unit_range
from .policy import Skipped
from .prepared import dataset_classes, uint8_item, uint8_labelled_item
from .worker_errors import WorkerErrorsUnwrapped


@attrs.frozen
class ScanReport:
    """How many images there are, how many were decoded, which failed (key, reason), and,
    for a labelled dataset, how many good decoded images each class has (empty otherwise)."""

    count: int
    scanned: int
    bad: list[tuple[str, str]]
    class_counts: list[int] = attrs.field(factory=list)


class _Probe(torch.utils.data.Dataset):
    """Decodes item i and returns ``(None, label)``, or ``((key, reason), None)`` when it
    is bad (or, in a labelled dataset, its label is not a class), whatever the policy."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.classes = dataset_classes(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[tuple[str, str] | None, int | None]:
        try:
            image, label = uint8_labelled_item(self.dataset, index)
        except BadImage as exc:
            return (f"#{index}", str(exc)), None
        if isinstance(image, Skipped):
            return (image.key, image.reason), None
        if self.classes and (label is None or not 0 <= label < self.classes):
            return (f"#{index}", f"label {label!r} is not one of the classes 0 to "
                    f"{self.classes - 1}"), None
        return None, label


def _as_list(items: Sequence[Any]) -> list[Any]:
    return list(items)


def scan_dataset(dataset: Dataset, limit: int = 0, workers: int | None = None,
                 progress: bool = True) -> ScanReport:
    """Decode the first ``limit`` images (0: all) on all cores and collect the bad ones."""
    from ..core.progress_bars import progress_bar

    count = len(dataset)
    scanned = min(limit, count) if limit else count
    workers = (os.cpu_count() or 1) if workers is None else workers
    loader = DataLoader(Subset(_Probe(dataset), range(scanned)), batch_size=64,
                        num_workers=workers, collate_fn=_as_list)
    bad: list[tuple[str, str]] = []
    classes = dataset_classes(dataset)
    class_counts = [0] * classes
    with progress_bar("scanning", progress, transient=True) as bar:
        task = bar.add_task("scan", total=scanned)
        for results in WorkerErrorsUnwrapped(loader):
            for problem, label in results:
                if problem is not None:
                    bad.append(problem)
                elif label is not None and classes:
                    class_counts[label] += 1
            bar.advance(task, len(results))
    return ScanReport(count, scanned, bad, class_counts)


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
