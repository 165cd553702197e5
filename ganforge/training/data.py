"""The order in which the trainer sees real images: seeded per epoch, resumable by step.

Batch ``b`` of a run is a pure function of ``(seed, b)``: epoch ``b // batches_per_epoch``
is a permutation drawn from ``seed`` and the epoch number, and the last partial batch of
each epoch is dropped so every batch has the same shape. A resumed run starts at the batch
where the checkpoint stopped, so it sees exactly the images the uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from ..errors import DataError
from ..interfaces import Dataset


class EpochBatchSampler:
    """Yields lists of indices forever, starting at global batch ``start``."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0) -> None:
        if size < batch_size:
            raise DataError(f"the dataset has {size} images, fewer than batch_size "
                            f"{batch_size}")
        self.size, self.batch_size, self.seed, self.start = size, batch_size, seed, start
        self.batches_per_epoch = size // batch_size

    def epoch_of(self, batch: int) -> int:
        """The epoch that global batch ``batch`` belongs to."""
        return batch // self.batches_per_epoch

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        while True:
            epoch, offset = divmod(batch, self.batches_per_epoch)
            order = self._permutation(epoch)
            for i in range(offset, self.batches_per_epoch):
                yield order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
            batch = (epoch + 1) * self.batches_per_epoch


def real_batches(dataset: Dataset, batch_size: int, seed: int, start_batch: int,
                 num_workers: int, pin_memory: bool) -> Iterator[torch.Tensor]:
    """An endless iterator over batches of real images, from global batch ``start_batch``."""
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, start_batch)
    # The loader draws its workers' base seed from this generator, not from torch's global
    # RNG, so starting (or resuming) a loader leaves the checkpointed RNG state untouched.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                        pin_memory=pin_memory, persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)
