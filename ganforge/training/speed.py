"""The trainer's speed switches, resolved for the device at hand.

``run.precision``: ``"auto"`` uses bfloat16 autocast where the hardware computes bf16
natively (CUDA devices that support it; CPUs with AVX512-BF16 or AMX), float32 elsewhere,
where emulated bf16 is slower than float32. ``run.channels_last``: unset means on (NHWC
convolutions are faster on both oneDNN CPUs and cuDNN GPUs), except with ``run.compile`` on
CUDA, where Inductor failed with it. ``run.compile``: off by
default, because compiling costs minutes on a small CPU and gained little there.
``run.cuda_graphs``: compiled G and D replayed as CUDA graphs (``torch.compile``'s
``reduce-overhead`` mode), to remove the kernel launch overhead compile alone leaves; off
by default (measured on an H100: docs/performance.md). ``benchmarks/train_step.py``
measures each switch.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import attrs
import torch

from ..core.errors import UsageError


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@attrs.frozen
class SpeedSettings:
    """What the trainer actually does on this device."""

    bf16: bool
    channels_last: bool
    compile: bool
    cuda_graphs: bool = False
    #: float16 autocast with loss scaling (:class:`torch.amp.GradScaler`).
    fp16: bool = False

    @property
    def precision(self) -> str:
        """The resolved precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    @property
    def compile_mode(self) -> str | None:
        """The ``torch.compile`` mode: ``reduce-overhead`` (CUDA graphs) or the default."""
        return "reduce-overhead" if self.cuda_graphs else None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @contextlib.contextmanager
    def autocast(self, device: torch.device) -> Iterator[None]:
        """bfloat16 (or float16) autocast around forward passes and losses, when on."""
        dtype = torch.float16 if self.fp16 else torch.bfloat16
        with torch.autocast(device.type, dtype=dtype, enabled=self.bf16 or self.fp16):
            yield

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A loss scaler for one network's updates under fp16, else None."""
        return torch.amp.GradScaler(device.type) if self.fp16 else None


def resolve_speed(precision: str, channels_last: bool | None, compile: bool,
                  device: torch.device, cuda_graphs: bool = False,
                  allow_fp16: bool = False) -> SpeedSettings:
    """Turn the recipe's switches (``auto``/unset included) into settings for ``device``:
    ``auto`` is bf16 where the hardware has it, else fp16 on a CUDA GPU when
    ``allow_fp16``, else fp32."""
    if cuda_graphs and not compile:
        raise UsageError("run.cuda_graphs = true needs run.compile = true (the graphs are "
                         "captured by torch.compile)")
    if cuda_graphs and device.type != "cuda":
        raise UsageError(f"run.cuda_graphs = true needs a CUDA device; this run uses "
                         f"{device.type}")
    fp16 = precision == "fp16"
    if precision == "auto":
        if device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            fp16 = not bf16 and allow_fp16
        else:
            bf16 = device.type == "cpu" and cpu_has_native_bf16()
    else:
        bf16 = precision == "bf16"
    if channels_last is None:
        # Inductor's CUDA backward of DCGAN's first ConvTranspose (a 1x1 input, whose
        # channels_last and contiguous strides coincide) failed a stride assertion with
        # torch 2.11 on an H100, so unset means off where compile meets CUDA.
        channels_last = not (compile and device.type == "cuda")
    return SpeedSettings(bf16=bf16, channels_last=channels_last, compile=compile,
                         cuda_graphs=cuda_graphs, fp16=fp16)
