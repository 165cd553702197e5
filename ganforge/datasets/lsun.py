"""``lsun``: LSUN scene categories read straight from the official lmdb layout.

``<root>/<category>_lmdb/`` holds one lmdb per category whose values are encoded WebP or
JPEG images. With ``labels = true`` each image is labelled with its category's position in
``categories`` (items are ``(image, label)`` pairs). The lmdb is opened lazily in each
process that reads it (so the dataset works with fork and spawn workers); the key list
comes from :mod:`.lmdb_index`.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.errors import DataError
from ..core.interfaces import ImageSpec
from ..core.params import param
from .common import EncodedImageDataset, sized_spec, width_param
from .lmdb_index import KeyIndex, lmdb_read_error, load_key_index, open_lmdb
from .policy import on_error_validator

DOWNLOAD_HINT = ("get it with the LSUN project's download.py (python download.py -c bedroom), "
                 "unzip it there, or point the recipe at it with --set dataset.root=PATH")


def _limit(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"'{attribute.name}' must be > 0 or unset: {value}")


class LSUNDataset(EncodedImageDataset):
    """LSUN scenes (e.g. ``bedroom_train``) from ``<root>/<category>_lmdb`` folders, one
    class per category when ``labels`` is on."""

    @attrs.frozen
    class Params:
        """Where the lmdb folders are and how to shape the images."""

        root: str = param("data/lsun", "folder holding <category>_lmdb folders")
        categories: tuple[str, ...] = param(("bedroom_train",),
                                            "categories, concatenated in this order")
        image_size: int = param(64, "shorter side resized to this, then center crop",
                                validator=attrs.validators.and_(attrs.validators.ge(4),
                                                                attrs.validators.le(1024)))
        width: int | None = width_param()
        channels: int = param(3, "1 (grey) or 3 (RGB)",
                              validator=attrs.validators.in_([1, 3]))
        hflip: bool = param(False, "mirror images left-right at random during training")
        limit: int | None = param(None, "use only the first N images (quick runs)",
                                  validator=_limit)
        on_error: str = param("fail", "a bad image: 'fail' (error naming it) or 'skip'",
                              validator=on_error_validator)
        labels: bool = param(False, "label each image with its category's position in "
                             "categories")

    def __init__(self, params: Params, progress: bool = True) -> None:
        super().__init__(params)
        root = Path(params.root).expanduser()
        if not params.categories:
            raise DataError("lsun: categories is empty")
        self.paths = [root / f"{c}_lmdb" for c in params.categories]
        for path in self.paths:
            if not (path / "data.mdb").is_file():
                raise DataError(f"lsun: no LSUN lmdb at {str(path)!r}; {DOWNLOAD_HINT}")
        self.indexes: list[KeyIndex] = [load_key_index(p, progress) for p in self.paths]
        self.starts: list[int] = [0]
        for index in self.indexes:
            self.starts.append(self.starts[-1] + len(index))
        total = self.starts[-1]
        self.length = min(total, params.limit) if params.limit else total
        if self.length == 0:
            raise DataError(f"lsun: {str(root)!r} holds no images")

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return sized_spec(params, len(params.categories) if params.labels else 0)

    def __len__(self) -> int:
        return self.length

    @property
    def targets(self) -> torch.Tensor | None:
        """Every image's class label (its category's position), or None without labels."""
        if not self.params.labels:
            return None
        counts = torch.tensor([len(index) for index in self.indexes])
        every = torch.repeat_interleave(torch.arange(len(self.indexes)), counts)
        return every[: self.length]

    def item_label(self, index: int) -> int | None:
        if not self.params.labels:
            return None
        if not 0 <= index < self.length:
            raise IndexError(index)
        return bisect.bisect_right(self.starts, index) - 1

    def _env(self, category: int) -> Any:
        # Opened on first use in each process (fork or spawn worker), never pickled.
        return open_lmdb(self.paths[category])

    def locate(self, index: int) -> tuple[int, bytes]:
        """(category number, lmdb key) of global ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        category = bisect.bisect_right(self.starts, index) - 1
        return category, self.indexes[category][index - self.starts[category]]

    def encoded(self, index: int) -> tuple[bytes, str]:
        import lmdb

        category, key = self.locate(index)
        name = f"{self.params.categories[category]}:{key.decode('utf-8', 'replace')}"
        try:
            with self._env(category).begin(buffers=False) as txn:
                data = txn.get(key)
        except lmdb.Error as exc:
            # A damaged database, not a bad image: no policy skips it.
            raise lmdb_read_error(self.paths[category], exc, f"image {name}") from None
        return bytes(data or b""), name
