"""Checkpoint names in a run's ``checkpoints/`` folder: ``step-0001000.safetensors``
(:func:`checkpoint_name`, :func:`checkpoint_step`), rotation (:func:`rotate`) and the
newest complete one (:func:`latest_checkpoint`)."""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import CheckpointError
from .checkpoint_files import read_header

_NAME = re.compile(r"^step-(\d{7,})\.safetensors$")
#: The suffix of the scores ``ganforge eval`` records beside a checkpoint file.
EVALUATIONS_SUFFIX = ".evaluations.jsonl"


def checkpoint_name(step: int) -> str:
    """``step-0001000.safetensors``: sorts by step as text."""
    return f"step-{step:07d}.safetensors"


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file name encodes, or ``None`` for other files."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def named_checkpoints(folder: Path) -> list[Path]:
    """The files in ``folder`` named like a checkpoint, oldest step first."""
    return sorted((p for p in folder.glob("step-*.safetensors") if checkpoint_step(p) is not None),
                  key=lambda p: checkpoint_step(p) or 0)


def rotate(folder: Path, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (never one in ``protect``), each
    with the scores recorded beside it (:data:`EVALUATIONS_SUFFIX`)."""
    found = named_checkpoints(folder)
    doomed = [p for p in found[:-keep_last] if p not in protect] if keep_last > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
        p.with_name(p.name + EVALUATIONS_SUFFIX).unlink(missing_ok=True)
    return doomed


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in ``folder`` whose header and metadata read back. Partial
    files never have a final name; a damaged file, a file that is not a ganforge
    checkpoint (a foreign safetensors file) and anything but a regular file (a FIFO named
    like a checkpoint) are skipped."""
    if not folder.is_dir():
        return None
    for path in reversed(named_checkpoints(folder)):
        try:
            read_header(path)
        except CheckpointError:
            continue
        return path
    return None
