"""Training: the trainer, checkpoints, the run directory and sampling."""

from .build import build_networks, dataset_image_spec, resolve_device
from .checkpoint import latest_checkpoint, read_checkpoint
from .run_dir import RunDirectory
from .trainer import Trainer, TrainResult, train

__all__ = [
    "RunDirectory",
    "TrainResult",
    "Trainer",
    "build_networks",
    "dataset_image_spec",
    "latest_checkpoint",
    "read_checkpoint",
    "resolve_device",
    "train",
]
