"""Parameter validators and the base classes shared by the image datasets."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.interfaces import Dataset, ImageSpec
from ..core.params import at_most, param
from .augment import random_hflip
from .decoding import BadImage, decode_image, resize_center_crop, to_unit_range
from .policy import Item, Skipped

image_size_validator = attrs.validators.and_(attrs.validators.ge(4), attrs.validators.le(1024))
channels_validator = attrs.validators.in_([1, 3])
#: attrs validator of a dataset's ``width``: unset (square images) or a size as above.
width_validator = attrs.validators.optional(image_size_validator)

#: What the ``width`` param of a dataset that resizes its images says.
RESIZED_WIDTH = "image width: resized to cover image_size x width, then center crop"


def width_param(doc: str = RESIZED_WIDTH) -> Any:
    """The ``width`` param of a dataset that can yield non-square images: unset (the
    default) for square ones; ``doc`` says what it does (``unset: square images`` is
    added)."""
    return param(None, f"{doc} (unset: square images)", validator=width_validator)


def sized_spec(params: Any, classes: int = 0) -> ImageSpec:
    """The spec of a dataset whose params have ``channels``, ``image_size`` and a
    :func:`width_param` (unset: square images)."""
    return ImageSpec(channels=params.channels, size=params.image_size, classes=classes,
                     width=params.width or params.image_size)

#: Where a dataset held in memory is read from: see :func:`in_memory_param`.
IN_MEMORY = ("auto", "none", "device")


def in_memory_param() -> Any:
    """The ``in_memory`` param of a dataset that can be held whole on the training device
    (``residency`` returns its value): ``auto`` (the default) when it fits
    (:func:`ganforge.training.data.holds_on_device`), ``none`` never (the loader reads it
    item by item), ``device`` whatever its size."""
    return param("auto", "'auto': held on the training device when it fits, else read by "
                 "the loader; 'none': the loader; 'device': on the device whatever its size",
                 validator=attrs.validators.in_(IN_MEMORY))


#: The most classes a dataset may label its images with (a recipe value is untrusted: a
#: conditional network allocates an embedding row per class).
MAX_CLASSES = 10_000
classes_validator = attrs.validators.and_(attrs.validators.ge(0), at_most(MAX_CLASSES))


class Uint8ImageDataset(Dataset):
    """A dataset whose items are uint8 images (:meth:`uint8_item`, what ``data prepare``
    stores), scaled to [-1, 1] on access, with the ``hflip`` param as batch augmentation.

    A labelled subclass (``classes > 0`` in its spec) also answers :meth:`item_label`; its
    items are then ``(image, label)`` pairs, and a skipped image takes its label with it.
    """

    @abc.abstractmethod
    def uint8_item(self, index: int) -> torch.Tensor | Skipped:
        """Item ``index``'s image as uint8 CHW, or a :class:`Skipped` marker."""

    def item_label(self, index: int) -> int | None:
        """The class label of item ``index`` (None: the dataset is unlabelled). Reads no
        image."""
        return None

    def __getitem__(self, index: int) -> Item:
        image = self.uint8_item(index)
        if isinstance(image, Skipped):
            return image  # its label is dropped with it
        label = self.item_label(index)
        unit = to_unit_range(image)
        return unit if label is None else (unit, label)

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_hflip(images, generator) if self.params.hflip else images


class EncodedImageDataset(Uint8ImageDataset):
    """A dataset of encoded image files or blobs: decoding, the shared preprocessing and the
    ``on_error`` policy. Subclasses say where item ``index`` is (:meth:`encoded`)."""

    @abc.abstractmethod
    def encoded(self, index: int) -> tuple[bytes | Path, str]:
        """The encoded image (bytes or a file) and the name errors give it."""

    def uint8_item(self, index: int) -> torch.Tensor | Skipped:
        source, name = self.encoded(index)
        try:
            if isinstance(source, bytes) and not source:
                raise BadImage(f"{name}: empty value")
            image = decode_image(source, self.params.channels, name=name)
            # Inside the policy: an image too elongated to resize is a bad image too.
            return resize_center_crop(image, self.params.image_size, name,
                                      self.params.width)
        except BadImage as exc:
            if self.params.on_error == "skip":
                return Skipped(name, str(exc))
            raise
