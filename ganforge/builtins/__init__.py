"""Components that ship with the core, registered through the same hook as any plugin."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Registry


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register the built-in loss, optimizer and datasets."""
    from .datasets import DigitsDataset, ImageFolderDataset, SyntheticDataset
    from .losses import BCELoss
    from .lsun import LSUNDataset
    from .optimizers import AdamOptimizer

    registry.register("loss", "bce", BCELoss)
    registry.register("optimizer", "adam", AdamOptimizer)
    registry.register("dataset", "digits", DigitsDataset)
    registry.register("dataset", "synthetic", SyntheticDataset)
    registry.register("dataset", "image_folder", ImageFolderDataset)
    registry.register("dataset", "lsun", LSUNDataset)
