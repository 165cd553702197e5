"""Sharing a trained generator: ``ganforge export`` writes a self-contained model folder in
the Hugging Face Hub layout (``model.safetensors``, ``config.json``, ``README.md``,
``samples.png``), :func:`load_generator` and ``ganforge sample DIR`` read it back with
nothing else, and :func:`push_to_hub` uploads it. See ``docs/sharing.md``."""

from ..io.export_config import (
    CARD_NAME,
    CONFIG_NAME,
    EXPORTED_FILES,
    FORMAT,
    FORMAT_VERSION,
    SAMPLES_NAME,
    WEIGHTS_NAME,
    ExportConfig,
    read_config,
)
from .export import ExportResult, export_checkpoint
from .hub import HubError, push_to_hub
from .loading import ExportedGenerator, load_exported, load_generator

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "EXPORTED_FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "SAMPLES_NAME",
    "WEIGHTS_NAME",
    "ExportConfig",
    "ExportResult",
    "ExportedGenerator",
    "HubError",
    "export_checkpoint",
    "load_exported",
    "load_generator",
    "push_to_hub",
    "read_config",
]
