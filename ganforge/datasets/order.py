"""The order in which a run sees its real images: seeded per epoch, resumable by batch.

Batch ``b`` of a run is a pure function of ``(seed, b)``: epoch ``b // batches_per_epoch``
is a permutation drawn from ``seed`` and the epoch number, and the last partial batch of
each epoch is dropped (``drop_last`` is always on) so every batch has the same shape. A
resumed run starts at the batch where the checkpoint stopped, so it sees exactly the
images the uninterrupted run saw. Under ``torch.distributed`` each of ``world_size`` ranks
takes its own slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..core.errors import DataError
from ..core.seeds import derive_seed


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

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "data order", epoch))
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
