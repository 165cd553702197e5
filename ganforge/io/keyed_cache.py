"""Cache files of tensors keyed by what produced them: safetensors whose metadata holds the
key (JSON). A file is used only when its key is the one asked for; one that cannot be read
or holds another key is a miss, never an error (a cache only saves time). Used for the
real-image feature statistics (:mod:`ganforge.evaluation.feature_cache`) and the fitted
digit classifier (:mod:`ganforge.evaluation.digit_classifier`)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..core.errors import StorageError
from .files import write_bytes_atomic, writing


def load_keyed(path: Path, key: Mapping[str, Any], names: Collection[str]
               ) -> dict[str, torch.Tensor] | None:
    """The tensors ``names`` of cache file ``path`` when its key is ``key``, else None
    (no file, another key, a missing tensor, or a file that cannot be read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if json.loads((f.metadata() or {}).get("key", "null")) != key:
                return None
            if not set(names) <= set(f.keys()):
                return None
            return {name: f.get_tensor(name) for name in names}
    except (OSError, SafetensorError, ValueError):
        return None


def store_keyed(path: Path, key: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
                ) -> bool:
    """Write ``tensors`` under ``key`` to ``path``, complete or not at all. The temporary
    file's name is unique to this writer (two processes may fill one entry at once). A
    folder that cannot be written (full disk, read-only) is passed over: returns whether
    the entry was written."""
    data = save({name: t.detach().cpu().contiguous() for name, t in tensors.items()},
                metadata={"key": json.dumps(key, sort_keys=True)})
    try:
        with writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except StorageError:
        return False
    return True
