"""Checks of datasets: the image spec, the items (shape, range, labels), ``len`` and
``IndexError``, resident images, determinism of items and of ``augment``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..core.interfaces import ImageSpec
from ..datasets.decoding import to_unit_range
from .report import SkipCheck, fail


def check_dataset_spec(cls: Any, params: Any) -> ImageSpec:
    """``image_spec_for(params)`` (a classmethod, called before any dataset is built)
    gives an :class:`ImageSpec` of positive ints and ``classes >= 0``."""
    spec = cls.image_spec_for(params)
    if not isinstance(spec, ImageSpec):
        raise fail(f"image_spec_for returned {type(spec).__name__}, not an ImageSpec")
    for field, low in (("channels", 1), ("size", 1), ("classes", 0)):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise fail(f"image_spec_for gave {field} = {value!r}")
    return spec


def _indices(length: int) -> list[int]:
    return sorted({0, 1, length // 2, length - 1} & set(range(length)))


def _item(dataset: Any, index: int, spec: ImageSpec) -> tuple[torch.Tensor, int | None]:
    item = dataset[index]
    where = f"item {index}"
    label: int | None = None
    if spec.classes > 0:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise fail(f"{where} is {type(item).__name__}, not an (image, label) pair (the "
                       f"spec has {spec.classes} classes)")
        item, raw = item
        if isinstance(raw, torch.Tensor) and raw.dim() == 0 and not raw.is_floating_point():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < spec.classes:
            raise fail(f"{where}: label {raw!r} is not an int in [0, {spec.classes})")
        label = raw
    if not isinstance(item, torch.Tensor):
        raise fail(f"{where}: image is {type(item).__name__}, not a tensor")
    if tuple(item.shape) != spec.shape():
        raise fail(f"{where}: image shape {tuple(item.shape)}, the spec says {spec.shape()}")
    if not item.is_floating_point():
        raise fail(f"{where}: image dtype {item.dtype}, expected float")
    if not bool(torch.isfinite(item).all()):
        raise fail(f"{where}: image has non-finite values")
    low, high = float(item.min()), float(item.max())
    if low < -1 or high > 1:
        raise fail(f"{where}: image leaves [-1, 1] (min {low:.4g}, max {high:.4g})")
    return item, label


def build_dataset(cls: type, params: Any, given: bool) -> Any:
    """``cls(params)``; without params of the caller's, a dataset that cannot be built from
    its defaults (it needs files) is skipped rather than failed."""
    from ..core.errors import GanforgeError

    try:
        return cls(params)
    except GanforgeError as error:
        if given:
            raise
        raise SkipCheck(f"cannot be built from its default params ({error}); pass "
                        "params=") from error


def check_dataset_items(dataset: Any, spec: ImageSpec) -> None:
    """``len`` is positive; items are float CHW images of the spec's shape in [-1, 1]
    (``(image, int label)`` pairs when the spec has classes); ``dataset[len]`` raises
    IndexError; ``resident_images``/``resident_labels``, when given, match."""
    length = len(dataset)
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise fail(f"len(dataset) is {length!r}")
    if not spec.same_images(dataset.image_spec) or dataset.image_spec != spec:
        raise fail(f"dataset.image_spec {dataset.image_spec!r} is not image_spec_for(params) "
                   f"{spec!r}")
    for index in _indices(length):
        _item(dataset, index, spec)
    try:
        dataset[length]
    except IndexError:
        pass
    else:
        raise fail(f"dataset[{length}] (len(dataset)) did not raise IndexError")
    resident = dataset.resident_images()
    if resident is not None:
        if resident.dtype not in (torch.uint8, torch.float32) or \
                tuple(resident.shape) != (length, *spec.shape()):
            raise fail(f"resident_images() is {resident.dtype} {tuple(resident.shape)}, "
                       f"expected uint8 or float32 {(length, *spec.shape())}")
        labels = dataset.resident_labels()
        if spec.classes and (labels is None or tuple(labels.shape) != (length,)):
            raise fail("resident_labels() must give one label per resident image")
        for index in _indices(length):  # the trainer's batches are the items
            image, label = _item(dataset, index, spec)
            held = resident[index]
            held = to_unit_range(held) if held.dtype == torch.uint8 else held
            if not torch.equal(held, image) or (spec.classes and int(labels[index]) != label):
                raise fail(f"resident_images()[{index}] (or its label) is not dataset[{index}]")


def check_dataset_determinism(make: Callable[[], Any], spec: ImageSpec) -> None:
    """An item read twice, and from a second instance, is the same; ``augment`` with a
    seeded generator is deterministic and keeps the shape and range."""
    a, b = make(), make()
    for index in _indices(len(a)):
        first, label = _item(a, index, spec)
        for other, where in ((a, "read again"), (b, "from a second instance")):
            again, label_again = _item(other, index, spec)
            if not torch.equal(first, again) or label != label_again:
                raise fail(f"item {index} differs when {where}")
    batch = torch.stack([_item(a, i, spec)[0] for i in _indices(len(a))])
    once = a.augment(batch.clone(), torch.Generator().manual_seed(3))
    twice = a.augment(batch.clone(), torch.Generator().manual_seed(3))
    if not isinstance(once, torch.Tensor) or once.shape != batch.shape:
        raise fail("augment changed the batch's shape")
    if not torch.equal(once, twice):
        raise fail("augment with the same seeded generator gave other images")
    if float(once.min()) < -1 or float(once.max()) > 1:
        raise fail("augment left [-1, 1]")


def exercise_dataset(dataset: Any) -> None:
    """Read a few items (for the component state check)."""
    for index in _indices(len(dataset)):
        dataset[index]
