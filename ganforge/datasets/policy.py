"""What happens to an image that cannot be decoded: the recipe's ``on_error`` policy.

``"fail"`` raises :class:`~ganforge.datasets.decoding.BadImage` naming the image.
``"skip"`` returns a :class:`Skipped` marker instead of the image; the loader's collate
function drops it from the batch and hands it to the trainer, which counts it, lists it in
the run directory (``skipped.jsonl``) and reports the total at the end. A bad image is never
replaced by another one.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

on_error_validator = attrs.validators.in_(["fail", "skip"])


@attrs.frozen
class Skipped:
    """Stands in for an image skipped under ``on_error = "skip"``."""

    key: str
    reason: str


@attrs.frozen
class ImageBatch:
    """A collated batch: the images that decoded, and the ones that were skipped."""

    images: torch.Tensor
    skipped: tuple[Skipped, ...] = ()

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader when ``pin_memory`` is on."""
        return ImageBatch(self.images.pin_memory(), self.skipped)


def collate_images(items: Sequence[torch.Tensor | Skipped]) -> ImageBatch:
    """Stack the decoded images of a batch, setting skipped ones aside."""
    skipped = tuple(item for item in items if isinstance(item, Skipped))
    images = [item for item in items if not isinstance(item, Skipped)]
    if not images:
        return ImageBatch(torch.empty(0), skipped)
    return ImageBatch(torch.stack(images), skipped)
