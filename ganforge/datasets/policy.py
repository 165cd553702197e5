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
    """A collated batch: the images that decoded, their class labels (``int64``, one per
    image; None for a dataset without classes), and the images that were skipped."""

    images: torch.Tensor
    skipped: tuple[Skipped, ...] = ()
    labels: torch.Tensor | None = None

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader when ``pin_memory`` is on."""
        labels = self.labels.pin_memory() if self.labels is not None else None
        return ImageBatch(self.images.pin_memory(), self.skipped, labels)


Item = torch.Tensor | tuple[torch.Tensor, int] | Skipped


def split_item(item: Item) -> tuple[torch.Tensor | Skipped, int | None]:
    """A dataset item as ``(image or Skipped marker, label or None)``."""
    if isinstance(item, tuple):
        image, label = item
        return image, int(label)
    return item, None


def image_of(item: Item) -> torch.Tensor | Skipped:
    """The image (or Skipped marker) of a dataset item, its label dropped."""
    return split_item(item)[0]


def collate_images(items: Sequence[Item]) -> ImageBatch:
    """Stack the decoded images of a batch (and their labels, when items are ``(image,
    label)`` pairs), setting skipped ones aside."""
    skipped = tuple(item for item in items if isinstance(item, Skipped))
    kept = [item for item in items if not isinstance(item, Skipped)]
    labelled = [isinstance(item, tuple) for item in kept]
    if any(labelled) and not all(labelled):
        raise TypeError("a dataset returned labelled and unlabelled items in one batch")
    if not kept:
        return ImageBatch(torch.empty(0), skipped)
    if not any(labelled):
        return ImageBatch(torch.stack(kept), skipped)  # type: ignore[arg-type]
    pairs: list[tuple[torch.Tensor, int]] = kept  # type: ignore[assignment]
    labels = torch.tensor([int(label) for _, label in pairs], dtype=torch.int64)
    return ImageBatch(torch.stack([image for image, _ in pairs]), skipped, labels)
