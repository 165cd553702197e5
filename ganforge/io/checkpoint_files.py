"""The checkpoint file: one safetensors file holding everything needed to continue a run
exactly, written atomically (:func:`write_checkpoint`) and read back without trusting it
(:func:`read_header`, :func:`read_metadata`, :func:`read_checkpoint`).

Layout of the tensor names::

    generator/<state_dict key>            discriminator/<state_dict key>
    optimizer/generator/<param>/<name>    optimizer/discriminator/<param>/<name>
    rng/torch_cpu   rng/latent   rng/cuda/<i>

The metadata and its decoding are :mod:`ganforge.io.checkpoint_schema`'s; names, rotation
and finding the newest are :mod:`ganforge.io.checkpoint_names`'. No pickle anywhere.

Files are written to a hidden temporary file unique to its writer
(``.<name>.<pid>.<random>.tmp``, see :func:`ganforge.io.files.temporary_path`), flushed,
fsynced and renamed, so a reader never sees a partial checkpoint under a final name and two
writers never touch each other's temporary file.

Reading never trusts the file (:mod:`ganforge.io.safetensors_read`): the header and all
ganforge metadata are checked before any tensor is read, the integrity hashes once the
tensors are read (:mod:`ganforge.io.integrity`), and the RNG states before anyone can
restore them (:mod:`ganforge.io.rng_states`). Every refusal is one
:class:`~ganforge.core.errors.CheckpointError` line naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_bytes

from ..core.errors import RecipeError
from ..core.structuring import unstructure_params
from . import integrity
from .checkpoint_schema import (
    FORMAT_VERSION,
    CheckpointContents,
    CheckpointHeader,
    TrainerMeta,
    decode_metadata,
    decode_trainer,
)
from .files import write_bytes_atomic, writing
from .refusals import problems_line, refusal
from .rng_states import rng_state_problems
from .safetensors_read import library_entries, read_checked_header, read_verified

# -- optimizer state ----------------------------------------------------------------------

def optimizer_to_flat(prefix: str, optimizer: torch.optim.Optimizer
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
                        ) -> dict[str, Any]:
    """Rebuild a state dict for ``torch.optim.Optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition("/")
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# -- writing ------------------------------------------------------------------------------

def write_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], *, step: int,
                     recipe_toml: str, versions: Mapping[str, str],
                     optimizers: Mapping[str, Any],
                     trainer: TrainerMeta | Mapping[str, Any] | None = None,
                     components: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write one checkpoint atomically: temporary file, fsync, rename, fsync the folder.

    ``trainer`` is a :class:`TrainerMeta` or the dict of its fields; it is validated as a
    reader will validate it, so a checkpoint ganforge writes always reads back. The
    temporary file is ``.<name>.<pid>.<random hex>.tmp`` beside ``path`` (matched by the
    glob ``.*.safetensors.*.tmp``), unique to this writer."""
    meta = _trainer_meta(trainer)
    metadata = {
        "ganforge.format": FORMAT_VERSION,
        "ganforge.step": str(step),
        "ganforge.recipe": recipe_toml,
        "ganforge.versions": json.dumps(dict(versions), sort_keys=True),
        "ganforge.optimizers": json.dumps(dict(optimizers), sort_keys=True),
        "ganforge.trainer": json.dumps(unstructure_params(meta), sort_keys=True),
        "ganforge.components": json.dumps({k: dict(v) for k, v in (components or {}).items()},
                                          sort_keys=True),
    }
    host = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata[integrity.INTEGRITY_KEY] = integrity.integrity_metadata(host)
    data = save_bytes(host, metadata=metadata)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, data)


def _trainer_meta(trainer: TrainerMeta | Mapping[str, Any] | None) -> TrainerMeta:
    """``trainer`` as a :class:`TrainerMeta`; a dict that no reader would accept is a bug of
    the writer, raised as ``ValueError`` before anything is written."""
    if trainer is None:
        return TrainerMeta()
    if isinstance(trainer, TrainerMeta):
        return trainer
    try:
        return decode_trainer(trainer)
    except RecipeError as exc:
        raise ValueError(f"trainer metadata not written: {problems_line(exc)}") from None


# -- reading ------------------------------------------------------------------------------

def read_header(path: str | Path) -> CheckpointHeader:
    """The checked and decoded header of a checkpoint, without its tensors' data.

    Everything :func:`read_checkpoint` checks before it reads the data section is checked
    here: the safetensors header in full (by ganforge, then by the safetensors library),
    the format, and every piece of ganforge metadata (step, versions, optimizers, the
    trainer's counters, the embedded recipe)."""
    path = Path(path)
    metadata, tensors = read_checked_header(path)
    entries = library_entries(path, metadata, tensors)
    return CheckpointHeader(**decode_metadata(path, metadata), entries=entries,
                            metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint, without reading its tensors (the header and the
    ganforge metadata are checked in full, so a truncated or hostile file is refused here
    already)."""
    return read_header(path).metadata


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and decode a whole checkpoint; any problem is a :class:`CheckpointError`.

    The header and all metadata are checked before the tensors are read, the bytes handed
    to the safetensors library are the very bytes that were checked (it checks the rest
    of the header itself before it makes any tensor), and the RNG states are checked
    before anyone can restore them."""
    path = Path(path)
    decoded: dict[str, Any] = {}
    metadata, tensors = read_verified(
        path, "checkpoint", lambda metadata: decoded.update(decode_metadata(path, metadata)))
    damage = integrity.mismatch(metadata, tensors)
    if damage:
        raise refusal(path, damage)
    problems = rng_state_problems(tensors)
    if problems:
        raise refusal(path, f"broken RNG state: {'; '.join(problems)}")
    return CheckpointContents(**decoded, tensors=tensors)
