"""Old home of the checkpoint file format, now split by job in :mod:`ganforge.io`
(:mod:`~ganforge.io.checkpoint_files`, :mod:`~ganforge.io.checkpoint_schema`,
:mod:`~ganforge.io.checkpoint_names`, :mod:`~ganforge.io.safetensors_read`,
:mod:`~ganforge.io.refusals`); kept so that plugins, scripts and tests importing it go on
working. Every name here is the io module's own object, and setting a name here (a
``monkeypatch`` or ``mock.patch`` of, say, ``load_bytes``) sets it in the io modules that
hold it, so the patch reaches the code that uses it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..core.errors import CheckpointError, RecipeError
from ..core.structuring import key_path, structure_params, unstructure_params
from ..io import (
    checkpoint_files,
    checkpoint_names,
    checkpoint_schema,
    integrity,
    limits,
    refusals,
    safetensors_read,
)
from ..io.checkpoint_files import (
    optimizer_from_flat,
    optimizer_to_flat,
    read_checkpoint,
    read_header,
    read_metadata,
    write_checkpoint,
)
from ..io.checkpoint_names import (
    EVALUATIONS_SUFFIX,
    checkpoint_name,
    checkpoint_step,
    latest_checkpoint,
    rotate,
)
from ..io.checkpoint_schema import (
    EMA_PREFIX,
    FORMAT_VERSION,
    BestMetric,
    CheckpointContents,
    CheckpointHeader,
    GradScalerState,
    TrainerMeta,
    decode_trainer,
)
from ..io.files import write_bytes_atomic, writing
from ..io.limits import MAX_BATCHES, MAX_HEADER_BYTES, MAX_ROLLBACKS, MAX_STEPS, MAX_THREADS
from ..io.refusals import (
    DuplicateKey,
    is_int,
    library_problem,
    no_duplicate_keys,
    quoted,
    refusal,
)
from ..io.rng_states import rng_state_problems
from ..io.safetensors_read import (
    DTYPES,
    TensorInfo,
    open_regular,
    parse_safetensors_header,
    read_header_bytes,
)

__all__ = [
    "DTYPES", "EMA_PREFIX", "EVALUATIONS_SUFFIX", "FORMAT_VERSION", "MAX_BATCHES",
    "MAX_HEADER_BYTES", "MAX_ROLLBACKS", "MAX_STEPS", "MAX_THREADS", "BestMetric",
    "CheckpointContents", "CheckpointError", "CheckpointHeader", "DuplicateKey",
    "GradScalerState", "RecipeError", "SafetensorError", "TensorInfo", "TrainerMeta",
    "checkpoint_name", "checkpoint_step", "decode_trainer", "integrity", "is_int", "key_path",
    "latest_checkpoint", "library_problem", "load_bytes", "no_duplicate_keys", "open_regular",
    "optimizer_from_flat", "optimizer_to_flat", "parse_safetensors_header", "quoted",
    "read_checkpoint", "read_header", "read_header_bytes", "read_metadata", "refusal",
    "rng_state_problems", "rotate", "safe_open", "save_bytes", "structure_params",
    "unstructure_params", "write_bytes_atomic", "write_checkpoint", "writing",
]

#: The io modules this one was split into: where a name set here is set too.
_HOMES = (checkpoint_files, checkpoint_names, checkpoint_schema, limits, refusals,
          safetensors_read)


class _Forwarding(types.ModuleType):
    """A module whose attribute assignments also reach the io modules holding the name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("__"):
            for home in _HOMES:
                if name in vars(home):
                    setattr(home, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Forwarding
