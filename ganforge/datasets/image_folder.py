"""``image_folder``: every image file under a folder, with the shared preprocessing; or,
when ``classes`` lists sub-folders, the images under those, labelled by sub-folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.errors import DataError
from ..core.interfaces import ImageSpec
from ..core.params import param
from .common import (
    MAX_CLASSES,
    EncodedImageDataset,
    channels_validator,
    image_size_validator,
    sized_spec,
    width_param,
)
from .policy import on_error_validator


def _class_folders(_instance: object, attribute: attrs.Attribute, value: Any) -> None:
    """Each entry one plain sub-folder name, listed once; at most MAX_CLASSES."""
    if len(value) > MAX_CLASSES:
        raise ValueError(f"'{attribute.name}' lists {len(value)} folders, more than "
                         f"{MAX_CLASSES}")
    seen: set[str] = set()
    for name in value:
        if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name
                or "\\" in name or "\0" in name):
            raise ValueError(f"'{attribute.name}': {name!r} is not the name of a sub-folder "
                             "of root")
        if name in seen:
            raise ValueError(f"'{attribute.name}': {name!r} is listed twice")
        seen.add(name)


class ImageFolderDataset(EncodedImageDataset):
    """Every image file under ``root`` (recursively, sorted), resized and center-cropped.

    With ``classes`` (sub-folder names of ``root``), only the images under those
    sub-folders, each labelled with its sub-folder's position in the list: items are then
    ``(image, label)`` pairs, class by class in the listed order.
    """

    @attrs.frozen
    class Params:
        """Where the images are, how to shape them, and which sub-folders are classes."""

        root: str = param(doc="folder searched recursively for images")
        image_size: int = param(64, "shorter side resized to this, then center crop",
                                validator=image_size_validator)
        width: int | None = width_param()
        channels: int = param(3, "1 (grey) or 3 (RGB)", validator=channels_validator)
        extensions: tuple[str, ...] = param(
            (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"),
            "file name endings that count as images (case-insensitive)")
        hflip: bool = param(False, "mirror images left-right at random during training")
        on_error: str = param("fail", "a bad image: 'fail' (error naming it) or 'skip'",
                              validator=on_error_validator)
        classes: tuple[str, ...] = param(
            (), "sub-folders of root, one class each, labelled by position in this list "
            "(empty: every image, unlabelled); 'ganforge data inspect' lists them",
            validator=_class_folders)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise DataError(f"image_folder: root {str(root)!r} is not a folder")
        self.suffixes = {e.lower() for e in params.extensions}
        self.labels: list[int] | None = None
        if not params.classes:
            self.files = self._images_under(root)
            if not self.files:
                raise DataError(f"image_folder: no images ({', '.join(sorted(self.suffixes))})"
                                f" under {str(root)!r}")
            return
        self.files, self.labels = [], []
        for label, name in enumerate(params.classes):
            folder = root / name
            if not folder.is_dir():
                raise DataError(f"image_folder: class {label} ({name!r}): {str(folder)!r} is "
                                "not a folder")
            files = self._images_under(folder)
            if not files:
                raise DataError(f"image_folder: class {label} ({name!r}): no images "
                                f"({', '.join(sorted(self.suffixes))}) under {str(folder)!r}")
            self.files += files
            self.labels += [label] * len(files)

    def _images_under(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file()
                      and p.suffix.lower() in self.suffixes)

    def class_folders(self) -> list[str]:
        """The sub-folders of ``root`` that hold images (what ``classes`` may list), sorted."""
        root = Path(self.params.root).expanduser()
        return sorted(p.name for p in root.iterdir() if p.is_dir() and any(
            f.suffix.lower() in self.suffixes and f.is_file() for f in p.rglob("*")))

    @property
    def targets(self) -> torch.Tensor | None:
        """Every image's class label, or None when unlabelled."""
        return None if self.labels is None else torch.tensor(self.labels, dtype=torch.int64)

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return sized_spec(params, len(params.classes))

    def __len__(self) -> int:
        return len(self.files)

    def item_label(self, index: int) -> int | None:
        return None if self.labels is None else self.labels[index]

    def encoded(self, index: int) -> tuple[Path, str]:
        path = self.files[index]
        return path, str(path)
