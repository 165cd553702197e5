"""The launch counter of ``ganforge bench`` and ``benchmarks/train_step.py``: what one step
dispatches, counted by ``torch.profiler`` (operators on a CPU; kernels and launch calls on
CUDA)."""

from __future__ import annotations

import torch
from torch import nn

from ganforge.benchmarking import LaunchCount, count_launches, plain_launches

CPU = torch.device("cpu")


def test_a_tiny_step_dispatches_the_same_operators_every_time() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)

    def step() -> None:
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()

    step()
    first, second = count_launches(step, CPU), count_launches(step, CPU)
    assert isinstance(first, LaunchCount) and first.operators > 0
    assert first == second
    assert first.kernels is None and str(first) == f"{first.operators} ops"


def test_the_plain_loop_is_counted_too() -> None:
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    counted = plain_launches(images, 8, 4, CPU, nz=8)
    assert counted.operators > 10 and counted == plain_launches(images, 8, 4, CPU, nz=8)
