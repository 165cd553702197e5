"""Checkpoints: one safetensors file holding everything needed to continue a run exactly.

Layout of the tensor names::

    generator/<state_dict key>            discriminator/<state_dict key>
    optimizer/generator/<param>/<name>    optimizer/discriminator/<param>/<name>
    rng/torch_cpu   rng/latent   rng/cuda/<i>

Metadata (all strings): ``ganforge.format``, ``ganforge.step``, ``ganforge.recipe`` (the
resolved TOML), ``ganforge.versions``, ``ganforge.optimizers`` (param groups and
non-tensor state, as JSON) and ``ganforge.trainer`` (the trainer's counters, as JSON).
No pickle anywhere.

Files are written to a hidden temporary file, flushed, fsynced and renamed, so a reader
never sees a partial checkpoint under a final name.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..errors import CheckpointError

FORMAT_VERSION = "1"
_NAME = re.compile(r"^step-(\d{7,})\.safetensors$")
#: Refuse headers larger than this before parsing them (a hostile length field).
MAX_HEADER_BYTES = 100 * 1024 * 1024


@attrs.frozen
class CheckpointContents:
    """A checkpoint read back: its tensors and decoded metadata."""

    step: int
    recipe_toml: str
    versions: dict[str, str]
    optimizers: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    #: The trainer's own counters (batches consumed, best metric, ...), as JSON.
    trainer: dict[str, Any] = attrs.field(factory=dict)

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix/`` with the prefix removed (e.g. a module's state dict)."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}


def checkpoint_name(step: int) -> str:
    """``step-0001000.safetensors``: sorts by step as text."""
    return f"step-{step:07d}.safetensors"


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file name encodes, or ``None`` for other files."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


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
                     trainer: Mapping[str, Any] | None = None) -> Path:
    """Write one checkpoint atomically: temporary file, fsync, rename, fsync the folder."""
    metadata = {
        "ganforge.format": FORMAT_VERSION,
        "ganforge.step": str(step),
        "ganforge.recipe": recipe_toml,
        "ganforge.versions": json.dumps(dict(versions), sort_keys=True),
        "ganforge.optimizers": json.dumps(dict(optimizers), sort_keys=True),
        "ganforge.trainer": json.dumps(dict(trainer or {}), sort_keys=True),
    }
    host = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = save_bytes(host, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate(folder: Path, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (never one in ``protect``)."""
    found = sorted((p for p in folder.glob("step-*.safetensors") if checkpoint_step(p) is not None),
                   key=lambda p: checkpoint_step(p) or 0)
    doomed = [p for p in found[:-keep_last] if p not in protect] if keep_last > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# -- reading ------------------------------------------------------------------------------

def _check_header(path: Path) -> None:
    """Refuse files whose safetensors header is not sane, before any parser sees them."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror}") from None
    if len(head) < 8:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({size} bytes)")
    (length,) = struct.unpack("<Q", head)
    if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
        raise CheckpointError(f"{path}: not a safetensors checkpoint "
                              f"(header length {length}, file size {size})")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint, without reading its tensors."""
    path = Path(path)
    _check_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors checkpoint: {exc}") from None
    if metadata.get("ganforge.format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a ganforge checkpoint "
                              f"(format {metadata.get('ganforge.format')!r})")
    return metadata


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and decode a whole checkpoint; any problem is a :class:`CheckpointError`."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        tensors = load_bytes(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors: {exc}") from None
    try:
        return CheckpointContents(
            step=int(metadata["ganforge.step"]),
            recipe_toml=metadata["ganforge.recipe"],
            versions=json.loads(metadata.get("ganforge.versions", "{}")),
            optimizers=json.loads(metadata.get("ganforge.optimizers", "{}")),
            tensors=tensors,
            trainer=json.loads(metadata.get("ganforge.trainer", "{}")),
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: broken ganforge metadata: {exc}") from None


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in ``folder`` whose header reads back (partial files never
    have a final name, but a damaged one is skipped too)."""
    if not folder.is_dir():
        return None
    candidates = sorted((p for p in folder.glob("step-*.safetensors")
                         if checkpoint_step(p) is not None),
                        key=lambda p: checkpoint_step(p) or 0, reverse=True)
    for path in candidates:
        try:
            read_metadata(path)
        except CheckpointError:
            continue
        return path
    return None


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor],
                      what: str, source: Path | str) -> None:
    """Load ``state`` into ``module`` after checking keys, shapes, dtypes and finiteness,
    naming every mismatch key by key; nothing is loaded if anything is wrong."""
    expected = module.state_dict()
    problems: list[str] = []
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"unexpected {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    for key in sorted(set(expected) & set(state)):
        want, got = expected[key], state[key]
        if want.shape != got.shape:
            problems.append(f"{key}: shape {list(got.shape)} in checkpoint, "
                            f"{list(want.shape)} in model")
        elif want.dtype != got.dtype:
            problems.append(f"{key}: dtype {got.dtype} in checkpoint, {want.dtype} in model")
        elif got.is_floating_point() and not torch.isfinite(got).all():
            problems.append(f"{key}: non-finite values")
    if problems:
        raise CheckpointError(f"{source}: {what} does not match: {'; '.join(problems)}")
    module.load_state_dict(state)
