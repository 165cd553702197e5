"""The sample grid of ``ganforge sample`` (and of an exported folder's ``samples.png``):
seeded latents, one row per class for a conditional generator, drawn the same way whether
the generator came from a checkpoint or from an exported folder."""

from __future__ import annotations

import io

import attrs
import torch
from torchvision.utils import save_image

from ..core.interfaces import Generator, is_conditional
from ..sampling import (
    class_grid_inputs,
    class_labels,
    columns_for,
    generate,
    grid_classes,
    image_grid,
    truncated_latent,
)


@attrs.frozen
class SampleGrid:
    """A grid (CHW in [0, 1]), how many images it shows, and what they are in words."""

    grid: torch.Tensor
    count: int
    what: str


def sample_grid(generator: Generator, n: int, seed: int, classes: int,
                label: int | None = None, device: torch.device | str = "cpu",
                truncation: float | None = None) -> SampleGrid:
    """``n`` images of ``generator`` from latents seeded with ``seed`` (drawn on the CPU,
    so a seed gives the same latents on every device). A conditional generator draws ``n``
    images of class ``label``, or (``label`` None) one row per class of its ``classes``, the
    same latents in every row. With ``truncation``, the latents are drawn under the
    truncation trick (:func:`~ganforge.sampling.truncated_latent`)."""
    rng = torch.Generator().manual_seed(seed)

    def latent(count: int) -> torch.Tensor:
        if truncation is None:
            return generator.sample_latent(count, rng, "cpu")
        return truncated_latent(generator, count, rng, truncation)

    nrow = None
    labels = None
    if is_conditional(generator) and label is None:
        rows = grid_classes(classes, n)
        nrow = columns_for(n, len(rows))
        z, labels = class_grid_inputs(latent(nrow), rows)
        z, labels = z.to(device), labels.to(device)
        what = f" ({len(rows)} classes x {nrow})"
    else:
        z = latent(n).to(device)
        labels = class_labels(n, label, device) if label is not None else None
        what = f" of class {label}" if label is not None else ""
    grid = image_grid(generate(generator, z, labels), nrow)
    return SampleGrid(grid, int(z.shape[0]), what)


def png_bytes(grid: torch.Tensor) -> bytes:
    """A grid from :func:`~ganforge.sampling.image_grid` as PNG file contents."""
    buffer = io.BytesIO()
    save_image(grid, buffer, format="PNG")
    return buffer.getvalue()
