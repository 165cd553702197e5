"""Training: assembly, the training step, the trainer, checkpoints and the run directory."""

from ..io.checkpoint_files import read_checkpoint
from ..io.checkpoint_names import latest_checkpoint
from .assembly import (
    Experiment,
    assemble,
    build_networks,
    dataset_image_spec,
    load_experiment,
    resolve_device,
)
from .run_dir import RunDirectory
from .trainer import Trainer, TrainResult, train

__all__ = [
    "Experiment",
    "RunDirectory",
    "TrainResult",
    "Trainer",
    "assemble",
    "build_networks",
    "dataset_image_spec",
    "latest_checkpoint",
    "load_experiment",
    "read_checkpoint",
    "resolve_device",
    "train",
]
