"""Old home of :mod:`ganforge.io.export_config` (``config.json`` of an exported model
folder), kept so that its imports go on working: this name is that module."""

from __future__ import annotations

import sys

from ..io import export_config as _export_config
from ..io.export_config import (
    CARD_NAME,
    CONFIG_NAME,
    EMA_WEIGHTS,
    EXPORTED_FILES,
    FORMAT,
    FORMAT_VERSION,
    MAX_CONFIG_BYTES,
    RAW_PREFIX,
    SAMPLES_NAME,
    WEIGHTS_NAME,
    ExportConfig,
    GeneratorConfig,
    ImageConfig,
    LatentConfig,
    PluginPin,
    WeightsConfig,
    config_json,
    decode_config,
    problems_line,
    read_config,
)

__all__ = [
    "CARD_NAME", "CONFIG_NAME", "EMA_WEIGHTS", "EXPORTED_FILES", "FORMAT", "FORMAT_VERSION",
    "MAX_CONFIG_BYTES", "RAW_PREFIX", "SAMPLES_NAME", "WEIGHTS_NAME", "ExportConfig",
    "GeneratorConfig", "ImageConfig", "LatentConfig", "PluginPin", "WeightsConfig",
    "config_json", "decode_config", "problems_line", "read_config",
]

sys.modules[__name__] = _export_config
