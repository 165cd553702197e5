"""Many processes through ``torchrun`` and ``torch.distributed`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m ganforge run RECIPE`` starts N processes; each sees
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. ``run.batch_size`` stays the **global** batch:
each rank trains on ``batch_size / world_size`` images of every global batch (the sampler
slices it), so a recipe means the same thing on 1 or N processes. Rank 0 alone writes files.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

import attrs
import torch
import torch.distributed as dist

from ..core.errors import UsageError

#: How long a collective may wait: rank 0 alone evaluates and writes checkpoints while the
#: others wait at their next collective, which can take long.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@attrs.frozen
class DistributedContext:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0

    def per_rank_batch(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise UsageError(f"run.batch_size {batch_size} is not divisible by the "
                             f"{self.world_size} processes")
        return batch_size // self.world_size

    def mean(self, values: Sequence[float], device: torch.device) -> list[float]:
        """The mean over ranks of each value (one all-reduce)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return (tensor / self.world_size).tolist()

    def maximum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum over ranks (in place)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of an equally shaped tensor, in rank order."""
        if not self.enabled:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return parts


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a single process (known before joining the group)."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK", "0") == "0"


def init_distributed(device_name: str) -> DistributedContext:
    """Join the process group described by torchrun's environment (nothing to do for a
    single process). Uses NCCL on CUDA and gloo on the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return DistributedContext(rank, world_size, local_rank)
