"""``ganforge.sample``: images from a trained generator (what ``ganforge sample`` does)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .common import plugins_or_installed

if TYPE_CHECKING:
    import torch

    from ..plugins import Plugins


@attrs.frozen
class SampleResult:
    """A grid of samples: the grid (CHW in [0, 1]), how many images it shows and what they
    are in words, the step of the weights, whether they are the EMA's, and the file written
    (None when no ``out`` was given)."""

    grid: torch.Tensor
    count: int
    what: str
    step: int
    is_ema: bool
    path: Path | None = None


def sample(source: str | Path, n: int = 64, *, seed: int = 0, out: str | Path | None = None,
           truncation: float | None = None, class_: str | int | None = None,
           ema: bool = True, device: str = "auto", plugins: Plugins | None = None
           ) -> SampleResult:
    """``n`` images of the generator of ``source`` (a checkpoint, or a folder written by
    ``ganforge export``) from latents seeded with ``seed``, as a grid; written to ``out``
    (.png, .jpg, .webp, ...) when given. A conditional generator draws one row per class
    (``class_`` None or ``"all"``) or ``n`` images of class ``class_``; ``truncation``
    draws the latents under the truncation trick; ``ema`` False takes the raw generator
    rather than its moving average. Every argument is checked before anything is loaded;
    errors are ganforge's (:class:`~ganforge.core.errors.UsageError`, ...)."""
    from ..core.interfaces import is_conditional
    from ..sampling import (
        check_count,
        check_output_path,
        check_seed,
        check_truncation,
        parse_class,
        write_grid,
    )
    from ..sharing.grid import sample_grid
    from ..training.building import resolve_device
    from ..training.experiment_loading import load_experiment

    target = check_output_path(out, "out") if out is not None else None
    check_count(n, "n")
    check_seed(seed, "seed")
    check_truncation(truncation)
    dev = resolve_device(device, "device")
    loaded = load_experiment(source, plugins_or_installed(plugins).registry, dev, ema=ema)
    generator = loaded.generator
    assert generator is not None
    label = parse_class(None if class_ is None else str(class_), loaded.classes,
                        is_conditional(generator), "class")
    drawn = sample_grid(generator, n, seed, loaded.classes, label, dev, truncation)
    if target is not None:
        write_grid(drawn.grid, target)
    return SampleResult(drawn.grid, drawn.count, drawn.what, loaded.step,
                        loaded.generator_is_ema, target)
