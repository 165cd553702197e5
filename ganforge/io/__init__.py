"""The file layer, at the bottom of ganforge: everything about reading and writing files.

- :mod:`.files`: atomic writes, JSON-lines logs that survive a torn last line, ``.npy``
  headers, ``OSError`` -> one :class:`~ganforge.core.errors.StorageError` line.
- :mod:`.safetensors_read`: the hardened safetensors reader (regular files only, header
  bounded and checked before the library sees it, the very bytes checked are loaded).
- :mod:`.checkpoint_schema`, :mod:`.checkpoint_files`, :mod:`.checkpoint_names`: a
  checkpoint's metadata, the file itself, and names, rotation and the newest one.
- :mod:`.integrity`, :mod:`.rng_states`: checks of what a checkpoint holds.
- :mod:`.model_folder`, :mod:`.export_config`: an exported model folder's files.
- :mod:`.keyed_cache`: cache files of tensors keyed by what produced them.
- :mod:`.refusals`, :mod:`.limits`: one-line refusals of a file, ceilings on its numbers.

Modules here import only the standard library, third-party packages,
``ganforge.core.errors``, ``ganforge.core.structuring``, ``ganforge.core.suggest`` and each
other. The names below are imported lazily, so ``import ganforge.io.files`` does not import
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "write_bytes_atomic": "files",
    "write_text_atomic": "files",
    "writing": "files",
    "read_jsonl": "files",
    "JsonLines": "files",
    "read_npy_header": "files",
    "temporary_path": "files",
    "TEMPORARY_SUFFIX": "files",
    "refusal": "refusals",
    "quoted": "refusals",
    "library_problem": "refusals",
    "problems_line": "refusals",
    "MAX_STEPS": "limits",
    "TensorInfo": "safetensors_read",
    "open_regular": "safetensors_read",
    "read_verified": "safetensors_read",
    "EMA_PREFIX": "checkpoint_schema",
    "TrainerMeta": "checkpoint_schema",
    "BestMetric": "checkpoint_schema",
    "GradScalerState": "checkpoint_schema",
    "CheckpointHeader": "checkpoint_schema",
    "CheckpointContents": "checkpoint_schema",
    "write_checkpoint": "checkpoint_files",
    "read_checkpoint": "checkpoint_files",
    "read_header": "checkpoint_files",
    "read_metadata": "checkpoint_files",
    "checkpoint_name": "checkpoint_names",
    "checkpoint_step": "checkpoint_names",
    "rotate": "checkpoint_names",
    "latest_checkpoint": "checkpoint_names",
    "EVALUATIONS_SUFFIX": "checkpoint_names",
    "rng_state_problems": "rng_states",
    "weights_bytes": "model_folder",
    "read_weights": "model_folder",
    "ExportConfig": "export_config",
    "read_config": "export_config",
    "load_keyed": "keyed_cache",
    "store_keyed": "keyed_cache",
}

__all__ = [
    "BestMetric", "CheckpointContents", "CheckpointHeader", "EMA_PREFIX", "EVALUATIONS_SUFFIX",
    "ExportConfig", "GradScalerState", "JsonLines", "MAX_STEPS", "TEMPORARY_SUFFIX",
    "TensorInfo", "TrainerMeta", "checkpoint_name", "checkpoint_step", "latest_checkpoint",
    "library_problem", "load_keyed", "open_regular", "problems_line", "quoted",
    "read_checkpoint", "read_config", "read_header", "read_jsonl", "read_metadata",
    "read_npy_header", "read_verified", "read_weights", "refusal", "rng_state_problems", "rotate",
    "store_keyed", "temporary_path", "weights_bytes", "write_bytes_atomic", "write_checkpoint",
    "write_text_atomic", "writing",
]

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint_files import read_checkpoint, read_header, read_metadata, write_checkpoint
    from .checkpoint_names import (
        EVALUATIONS_SUFFIX,
        checkpoint_name,
        checkpoint_step,
        latest_checkpoint,
        rotate,
    )
    from .checkpoint_schema import (
        EMA_PREFIX,
        BestMetric,
        CheckpointContents,
        CheckpointHeader,
        GradScalerState,
        TrainerMeta,
    )
    from .export_config import ExportConfig, read_config
    from .files import (
        TEMPORARY_SUFFIX,
        JsonLines,
        read_jsonl,
        read_npy_header,
        temporary_path,
        write_bytes_atomic,
        write_text_atomic,
        writing,
    )
    from .keyed_cache import load_keyed, store_keyed
    from .limits import MAX_STEPS
    from .model_folder import read_weights, weights_bytes
    from .refusals import library_problem, problems_line, quoted, refusal
    from .rng_states import rng_state_problems
    from .safetensors_read import TensorInfo, open_regular, read_verified


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ganforge.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
