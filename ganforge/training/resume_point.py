"""Which checkpoint a run continues from (``--resume``, a sweep's requeue, a rollback after
a divergence).

A checkpoint that is there but refused (one damaged byte in its metadata, a truncated
copy, something else under its name) is never passed over: continuing from an older one,
or from step 0, would later write a checkpoint of the same step over it, and the damage
would go unnoticed. The run stops instead, with one line naming the file. Only a folder
with no file named like a checkpoint starts afresh; the temporary file of an interrupted
write (``.step-N.safetensors.<pid>.<random>.tmp``) never had a final name and is not one.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CheckpointError
from ..io.checkpoint_files import read_header
from ..io.checkpoint_names import checkpoint_step


def resume_checkpoint(folder: Path) -> Path | None:
    """The newest file in ``folder`` named like a checkpoint (``step-N.safetensors``),
    its header and metadata checked (:func:`~ganforge.io.checkpoint_files.read_header`); ``None``
    only when there is no such file. When that newest file is refused, its refusal is
    raised as one :class:`~ganforge.core.errors.CheckpointError` line naming it, with what to
    do about it."""
    if not folder.is_dir():
        return None
    named = [p for p in folder.glob("step-*.safetensors") if checkpoint_step(p) is not None]
    if not named:
        return None
    newest = max(named, key=lambda p: (checkpoint_step(p) or 0, p.name))
    try:
        read_header(newest)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; it is the run's newest checkpoint, so the run does not "
                              "continue (nothing was written, and it is never overwritten: "
                              "move it away to continue from an older one)") from None
    return newest
