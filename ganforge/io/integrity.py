"""Integrity hashes of a checkpoint's tensors: a bit flipped in the data section (a bad
disk, a copy cut short and padded, a damaged transfer) is refused instead of loading
silently.

The writer records one SHA-256 per tensor group in the metadata key
:data:`INTEGRITY_KEY`, as JSON ``{"sha256": {"<group>": "<64 hex digits>", ...}}``. A group
is a tensor name's first component (``generator``, ``discriminator``, ``generator_ema``,
``rng``, ``trainer``), or its first two for the optimizers' and components' state
(``optimizer/generator``, ``state/augment``). A group's digest covers, in name order, each
tensor's name, dtype, shape and bytes, so a refusal names the damaged group.

:func:`record_problem` checks the record when the header is read (a damaged record is
refused like any broken metadata); :func:`mismatch` compares it with the tensors once
they are read; the checkpoint reader turns either into its one-line refusal. A checkpoint
written before hashes were recorded has no record and loads as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import torch

from .refusals import quoted

#: The metadata key holding the digests.
INTEGRITY_KEY = "ganforge.integrity"
_ALGORITHM = "sha256"
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: Tensor prefixes whose groups are named by their first two components.
_TWO_LEVEL = frozenset({"optimizer", "state"})


def tensor_group(name: str) -> str:
    """The integrity group of tensor ``name`` (see the module docstring)."""
    parts = name.split("/")
    return "/".join(parts[:2]) if parts[0] in _TWO_LEVEL and len(parts) > 2 else parts[0]


def group_digests(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The SHA-256 of every group of ``tensors`` (on the CPU, as the file stores them)."""
    hashes: dict[str, Any] = {}
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        digest = hashes.setdefault(tensor_group(name), hashlib.new(_ALGORITHM))
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(b"\0")
        flat = tensor.to("cpu").contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().data)
    return {group: digest.hexdigest() for group, digest in hashes.items()}


def integrity_metadata(tensors: Mapping[str, torch.Tensor]) -> str:
    """The value of :data:`INTEGRITY_KEY` for a checkpoint holding ``tensors``."""
    return json.dumps({_ALGORITHM: group_digests(tensors)}, sort_keys=True)


def record_problem(metadata: Mapping[str, str]) -> str | None:
    """Why the record in ``metadata`` is not exactly ``{"sha256": {group: 64 hex digits}}``
    (``None``: it is, or there is none, as in an older checkpoint)."""
    text = metadata.get(INTEGRITY_KEY)
    if text is None:
        return None
    where = f"broken ganforge metadata: {INTEGRITY_KEY}"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return f"{where} is not valid JSON"
    digests = value.get(_ALGORITHM) if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(digests, dict) or not all(
            isinstance(g, str) and isinstance(d, str) and _DIGEST.fullmatch(d)
            for g, d in digests.items()):
        return f'{where} is not a JSON object {{"{_ALGORITHM}": {{group: 64 hex digits}}}}'
    return None


def mismatch(metadata: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``tensors`` do not match the digests recorded in ``metadata`` (already checked
    by :func:`record_problem`), naming the group; ``None`` when they match or when
    nothing is recorded."""
    if INTEGRITY_KEY not in metadata:
        return None
    recorded = json.loads(metadata[INTEGRITY_KEY])[_ALGORITHM]
    actual = group_digests(tensors)
    unlisted = sorted(set(actual) - set(recorded))
    absent = sorted(set(recorded) - set(actual))
    if unlisted:
        problem = f"tensor group {quoted(unlisted[0])} has no recorded digest"
    elif absent:
        problem = f"tensor group {quoted(absent[0])} is recorded but holds no tensors"
    else:
        damaged = [group for group in sorted(actual) if actual[group] != recorded[group]]
        if not damaged:
            return None
        problem = (f"tensor group {quoted(damaged[0])} does not have the "
                   f"{_ALGORITHM.upper()} recorded when it was written")
        if len(damaged) > 1:
            problem += f" (nor do {', '.join(quoted(g) for g in damaged[1:])})"
    return f"integrity check failed: {problem}; the file is damaged"

