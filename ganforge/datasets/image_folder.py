"""``image_folder``: every image file under a folder, with the shared preprocessing."""

from __future__ import annotations

from pathlib import Path

import attrs

from ..errors import DataError
from ..interfaces import ImageSpec
from ..params import param
from .common import EncodedImageDataset, channels_validator, image_size_validator
from .policy import on_error_validator


class ImageFolderDataset(EncodedImageDataset):
    """Every image file under ``root`` (recursively, sorted), resized and center-cropped."""

    @attrs.frozen
    class Params:
        """Where the images are and how to shape them."""

        root: str = param(doc="folder searched recursively for images")
        image_size: int = param(64, "shorter side resized to this, then center crop",
                                validator=image_size_validator)
        channels: int = param(3, "1 (grey) or 3 (RGB)", validator=channels_validator)
        extensions: tuple[str, ...] = param(
            (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"),
            "file name endings that count as images (case-insensitive)")
        hflip: bool = param(False, "mirror images left-right at random during training")
        on_error: str = param("fail", "a bad image: 'fail' (error naming it) or 'skip'",
                              validator=on_error_validator)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise DataError(f"image_folder: root {str(root)!r} is not a folder")
        suffixes = {e.lower() for e in params.extensions}
        self.files = sorted(p for p in root.rglob("*") if p.is_file()
                            and p.suffix.lower() in suffixes)
        if not self.files:
            raise DataError(f"image_folder: no images ({', '.join(sorted(suffixes))}) "
                            f"under {str(root)!r}")

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:
        return len(self.files)

    def encoded(self, index: int) -> tuple[Path, str]:
        path = self.files[index]
        return path, str(path)
