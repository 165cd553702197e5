"""The ``lsun`` dataset: LSUN scene categories in the official lmdb layout.

Its parameters and its data-path checks are final; decoding the lmdb is the subject of
the datasets work (issue 3) and until then an existing lmdb is refused with a clear error.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from ..errors import DataError
from ..interfaces import Dataset, ImageSpec
from ..params import param

DOWNLOAD_HINT = ("get it with the LSUN project's download.py "
                 "(python download.py -c bedroom) and unzip it there, "
                 "or point the recipe at it with --set dataset.root=PATH")


class LSUNDataset(Dataset):
    """LSUN scenes (e.g. ``bedroom_train``) from ``<root>/<category>_lmdb`` folders."""

    @attrs.frozen
    class Params:
        """Where the lmdb folders are and how to shape the images."""

        root: str = param("data/lsun", "folder holding <category>_lmdb folders")
        categories: tuple[str, ...] = param(("bedroom_train",), "categories to concatenate")
        image_size: int = param(64, "shorter side resized to this, then center crop",
                                validator=attrs.validators.in_([32, 64, 128, 256]))
        channels: int = param(3, "3 (RGB)", validator=attrs.validators.in_([3]))

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        root = Path(params.root).expanduser()
        missing = [root / f"{c}_lmdb" for c in params.categories
                   if not (root / f"{c}_lmdb").is_dir()]
        if missing:
            raise DataError(f"lsun: no LSUN lmdb at {str(missing[0])!r}; {DOWNLOAD_HINT}")
        raise DataError(f"lsun: found {str(root)!r}, but this ganforge cannot decode LSUN "
                        "lmdb files yet; prepare the images as a folder and use "
                        "'image_folder' meanwhile")

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:  # pragma: no cover - construction always refuses for now
        return 0

    def __getitem__(self, index: int) -> torch.Tensor:  # pragma: no cover
        raise IndexError(index)
