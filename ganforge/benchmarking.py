"""Timing ganforge's training step against the plain DCGAN loop of the PyTorch example.

Used by ``ganforge bench RECIPE`` and ``benchmarks/train_step.py``. The plain loop is written
out here as the example writes it (Sigmoid + ``nn.BCELoss``, real and fake batches through D
separately, the fake batch reused for the G update, ``.item()`` on both losses every step),
independent of ganforge's components; ganforge's side is its public training step
(:class:`~ganforge.training.step.GANStep`) on the experiment :func:`assemble` builds. Both run
on the same uint8 images held on the device, after warm-up.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from .peer import PlainLoop

# -- (a) the plain loop, as the PyTorch DCGAN example writes it ----------------------------
# Its networks and initialisation live in :mod:`ganforge.peer`, which also trains it on a
# dataset for the quality figures.

def plain_loop(images: torch.Tensor, batch: int, steps: int, warmup: int, width: int,
               device: torch.device, nz: int = 100) -> float:
    """Images/s of the example's training loop on uint8 ``images`` held on ``device``."""
    loop = PlainLoop(nz, width, images.shape[1], images.shape[-1], device)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        index = torch.randint(0, images.shape[0], (batch,), device=device)
        loop.step(images.index_select(0, index).float().div_(127.5).sub_(1.0))
    sync(device)
    return steps * batch / (time.perf_counter() - start)


# -- (b) ganforge's trainer step ------------------------------------------------------------

def trainer_loop(step: Any, batches: Any, steps: int, warmup: int, batch: int) -> float:
    """Images/s of ganforge's training step ``step`` (the whole step: D and G updates,
    divergence watch, no host synchronisation) on ``batches``."""
    device = step.experiment.device
    next_real = functools.partial(real_on_device, step.experiment, step.latent_rng, batches)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        step(next_real, i + 1)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def real_on_device(experiment: Any, rng: torch.Generator, batches: Any
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The next batch of ``batches`` as the trainer feeds it: on the device, augmented, in
    the step's memory format, with its labels (None for an unlabelled dataset)."""
    batch = next(batches)
    real = batch.images.to(experiment.device, non_blocking=True)
    real = experiment.dataset.augment(real, rng)
    labels = batch.labels.to(experiment.device) if batch.labels is not None else None
    return real.contiguous(memory_format=experiment.speed.memory_format), labels


@attrs.frozen
class LaunchCount:
    """What one training step dispatches, counted by ``torch.profiler``."""

    #: Operators dispatched by the host: ``aten::`` events with no ``aten::`` event above
    #: them (each one is at least one kernel launch on a GPU; Inductor's fused CPU kernels
    #: are not operators and are not counted, its calls into aten are).
    operators: int
    #: CUDA kernels that ran (None on a CPU).
    kernels: int | None = None
    #: Host-side launch calls (``cudaLaunchKernel``-like and ``cudaGraphLaunch``): what
    #: CUDA graphs reduce (None on a CPU).
    launches: int | None = None

    def __str__(self) -> str:
        if self.kernels is None:
            return f"{self.operators} ops"
        return f"{self.operators} ops, {self.kernels} kernels, {self.launches} launches"


def count_launches(run: Callable[[], object], device: torch.device) -> LaunchCount:
    """Count what ``run()`` (one training step) dispatches on ``device``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run()
        sync(device)
    events = list(prof.events())
    operators = sum(1 for e in events if e.name.startswith("aten::") and not _below_aten(e))
    if device.type != "cuda":
        return LaunchCount(operators)
    kernels = sum(1 for e in events
                  if e.device_type == torch.autograd.DeviceType.CUDA and e.is_async is False
                  and "memcpy" not in e.name.lower() and "memset" not in e.name.lower())
    launches = sum(1 for e in events if "LaunchKernel" in e.name or "GraphLaunch" in e.name)
    return LaunchCount(operators, kernels, launches)


def _below_aten(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def plain_launches(images: torch.Tensor, batch: int, width: int, device: torch.device,
                   nz: int = 100) -> LaunchCount:
    """What one step of the example's loop dispatches (after two untimed steps)."""
    loop = PlainLoop(nz, width, images.shape[1], images.shape[-1], device)
    real = images[:batch].float().div_(127.5).sub_(1.0)
    for _ in range(2):
        loop.step(real)
    return count_launches(lambda: loop.step(real), device)


def step_flops(step: Any, batches: Any, batch: int) -> float:
    """FLOPs per image of one ganforge training step, counted by torch's FlopCounterMode
    (convolutions and matrix products, forward and backward) on the eager modules (the
    whole-step graph's step is counted through the eager step it compiles)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .training.step import GANStep

    x = step.experiment
    forward = step.forward_g, step.forward_d
    step.forward_g, step.forward_d = x.generator, x.discriminator
    try:
        with FlopCounterMode(display=False) as counter:
            GANStep.__call__(step, functools.partial(real_on_device, x, step.latent_rng,
                                                     batches), 1)
    finally:
        step.forward_g, step.forward_d = forward
    return counter.get_total_flops() / batch


@attrs.frozen
class BenchRow:
    """One batch size's figures."""

    batch: int
    ganforge: float
    ganforge_loader: float
    plain: float | None
    peak_memory: str
    #: FLOPs per image of ganforge's step (counted, not estimated).
    flops_per_image: float = 0.0
    #: Whether ganforge's step ran under bf16 autocast (which peak its roofline uses).
    bf16: bool = False
    #: What one step of ganforge's step and of the plain loop dispatches.
    launches: LaunchCount | None = None
    plain_launches: LaunchCount | None = None

    @property
    def tflops(self) -> float:
        """What ganforge's step achieved, in TFLOP/s."""
        return self.ganforge * self.flops_per_image / 1e12

    @property
    def ratio(self) -> float | None:
        return None if self.plain is None else self.ganforge / self.plain

    @property
    def loader_share(self) -> float:
        """Fraction of a step spent waiting for the data loader."""
        return max(0.0, 1.0 - self.ganforge_loader / self.ganforge)


def bench_recipe(recipe: Any, plugins: Any, steps: int, warmup: int,
                 batches: Sequence[int] | None = None, baseline: bool = True
                 ) -> list[BenchRow]:
    """Time ganforge's step on ``recipe`` (its dataset held on the device, and through
    its data loader) and, for DCGAN recipes, the plain example loop on the same images."""
    from .datasets.decoding import to_uint8
    from .datasets.policy import split_item
    from .training import assemble
    from .training.data import real_batches, shutdown_workers
    from .training.distributed import DistributedContext
    from .training.step import forward_module
    from .training.step_graph import build_step

    rows = []
    for batch in batches or [recipe.run.batch_size]:
        variant = recipe.with_overrides([f"run.batch_size={batch}"], plugins.registry)
        x = assemble(variant, plugins.registry, variant.run.device)
        run, device = variant.run, x.device
        assert x.generator is not None and x.discriminator is not None and x.dataset is not None
        forward = functools.partial(forward_module, run=run, speed=x.speed,
                                    dist=DistributedContext(), device=device)
        step = build_step(x, torch.Generator(device=device).manual_seed(run.seed),
                          forward_g=forward(x.generator), forward_d=forward(x.discriminator))
        n = max(2 * batch, min(len(x.dataset), 8 * batch))
        items = [(image, label) for image, label in map(split_item, map(x.dataset.__getitem__,
                                                                        range(n)))
                 if isinstance(image, torch.Tensor)]  # skipped bad images left out
        images = torch.stack([to_uint8(image) for image, _ in items]).to(device)
        labels = (torch.tensor([label for _, label in items], device=device)
                  if items[0][1] is not None else None)
        resident = _resident_batches(images, labels, batch, device)
        flops = step_flops(step, resident, batch)
        ours = trainer_loop(step, resident, steps, warmup, batch)
        memory = peak_memory(device)
        launches = count_launches(functools.partial(
            step, functools.partial(real_on_device, x, step.latent_rng, resident),
            warmup + steps + 1), device)
        loader = real_batches(x.dataset, batch, run.seed, 0, num_workers=run.num_workers,
                              device=device, pin_memory=device.type == "cuda")
        try:
            loaded = trainer_loop(step, loader, steps, warmup, batch)
        finally:
            shutdown_workers(loader)
        plain = plain_counted = None
        if baseline and variant["generator"].name == "dcgan:dcgan" and \
                variant["discriminator"].name == "dcgan:dcgan":
            width, nz = (variant["generator"].params.width,
                         variant["generator"].params.latent_dim)
            plain = plain_loop(images, batch, steps, warmup, width, device, nz)
            plain_counted = plain_launches(images, batch, width, device, nz)
        rows.append(BenchRow(batch, ours, loaded, plain, memory, flops, x.speed.bf16,
                             launches, plain_counted))
    return rows


def _resident_batches(images: torch.Tensor, labels: torch.Tensor | None, batch: int,
                      device: torch.device) -> Any:
    from .datasets.decoding import to_unit_range
    from .datasets.policy import ImageBatch

    g = torch.Generator().manual_seed(0)
    while True:
        index = torch.randint(0, images.shape[0], (batch,), generator=g).to(device)
        yield ImageBatch(to_unit_range(images.index_select(0, index)),
                         labels=labels.index_select(0, index) if labels is not None else None)


#: Dense bf16 tensor-core peaks in TFLOP/s (NVIDIA datasheets, without sparsity), matched
#: in order against ``torch.cuda.get_device_name``: the first key found in the name wins.
BF16_PEAK_TFLOPS = {"H200 NVL": 835.0, "H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0,
                    "H100": 989.0, "A100": 312.0}


def known_peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The bf16 peak of a known GPU, for the roofline fraction of a bf16 step; None for
    float32 steps (their peak depends on TF32 settings), MIG slices and other devices."""
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    if "MIG" in name:
        return None  # a slice of the GPU: a fraction of its peak
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        value = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
        return f"{value:.0f} MiB"
    import resource
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (process RSS)"


