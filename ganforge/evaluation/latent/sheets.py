"""The arithmetic sheet's record: the JSON beside a sheet image (seed, n, the
checkpoint's sha256, the class and whether the EMA generator drew it), written, read and
checked against the checkpoint and the options of step 2. See
:mod:`ganforge.evaluation.latent`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ...core.errors import UsageError
from ...core.interfaces import Generator
from ...sampling import parse_class
from .walks import latent_prior

#: Format tag written into a sample sheet's JSON record.
SHEET_FORMAT = "ganforge.arithmetic-sheet/1"
#: The class a conditional generator's arithmetic sheet draws when ``--class`` is not given.
DEFAULT_SHEET_CLASS = 0


def sheet_record_path(sheet: str | Path) -> Path:
    """The JSON record beside a sheet image: ``sheet.png`` -> ``sheet.json``."""
    return Path(sheet).with_suffix(".json")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a whole file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sheet_record(
    checkpoint: str | Path,
    step: int,
    seed: int,
    n: int,
    generator: Generator,
    label: int | None = None,
    ema: bool | None = None,
) -> dict[str, Any]:
    """What a sheet's JSON holds: enough to redraw its latents and to recognise its checkpoint.

    The latents themselves are not stored; :func:`sheet_latents` redraws them from
    ``(seed, n)``. The checkpoint is identified by the sha256 of the whole file (so a copied
    or moved checkpoint still matches); its path and step are kept for messages. ``label``
    (a conditional generator's class, ``"class"`` in the JSON) and ``ema`` (whether the EMA
    generator drew the sheet) are written when given.
    """
    record: dict[str, Any] = {
        "format": SHEET_FORMAT,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "step": int(step),
        "seed": int(seed),
        "n": int(n),
        "latent_dim": int(generator.latent_dim),
        "prior": latent_prior(generator),
    }
    if label is not None:
        record["class"] = int(label)
    if ema is not None:
        record["ema"] = bool(ema)
    return record


def sheet_class(
    text: str | None, classes: int, conditional: bool, option: str = "--class"
) -> int | None:
    """The one class a new arithmetic sheet draws: ``None`` for an unconditional generator
    (given a class, :func:`~ganforge.sampling.parse_class`'s error), else class ``text``, or
    :data:`DEFAULT_SHEET_CLASS` when ``text`` is None. ``all`` is refused: the arithmetic
    averages latents of one class."""
    if text is None:
        return DEFAULT_SHEET_CLASS if conditional else None
    label = parse_class(text, classes, conditional, option)
    if label is None:
        raise UsageError(
            f"{option} {text}: the arithmetic holds one class; give {option} K "
            f"(0 to {classes - 1}, default {DEFAULT_SHEET_CLASS})"
        )
    return label


def recorded_class(
    record: dict[str, Any],
    text: str | None,
    classes: int,
    conditional: bool,
    record_path: str | Path,
    option: str = "--class",
) -> int | None:
    """The class a sheet's record says it was drawn in (``None``: unconditional), checked
    against the generator (``classes``, ``conditional``) and against ``text``, a class given
    again in step 2 (which must name the same class). Records written before classes
    existed hold none and stay valid for unconditional generators."""
    value = record.get("class")
    if not conditional:
        if text is not None:
            parse_class(text, classes, conditional, option)  # raises: unconditional
        if value is not None:
            raise UsageError(
                f"{record_path}: records class {_shown(value)}, but this checkpoint's "
                "generator is unconditional; write the sheet again"
            )
        return None
    if value is None:
        raise UsageError(
            f"{record_path}: records no class, but this checkpoint's generator is "
            "conditional; write the sheet again"
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < classes:
        raise UsageError(
            f"{record_path}: class is {_shown(value)}, not an integer from 0 to "
            f"{classes - 1}; write the sheet again"
        )
    if text is not None:
        given = parse_class(text, classes, conditional, option)
        if given != value:
            raise UsageError(
                f"{option} {text} does not match the sheet ({record_path} says {value}); "
                f"leave {option} out in step 2"
            )
    return value


def check_sheet_ema(
    record: dict[str, Any], ema_used: bool, checkpoint_has_ema: bool, record_path: str | Path
) -> None:
    """Refuse (UsageError) a figure drawn with another generator than the sheet: the EMA
    one where the sheet used the raw one (``--no-ema``), or the other way round.

    ``record["ema"]`` says which drew the sheet; a record without it predates ``--no-ema``
    and was drawn with the default, the EMA generator when ``checkpoint_has_ema``.
    """
    recorded = record.get("ema", checkpoint_has_ema)
    if not isinstance(recorded, bool):
        raise UsageError(
            f"{record_path}: ema is {_shown(recorded)}, not true or false; write the sheet again"
        )
    if recorded and not ema_used:
        raise UsageError(
            f"--no-ema does not match the sheet ({record_path}: drawn with the EMA "
            "generator); leave --no-ema out in step 2"
        )
    if ema_used and not recorded:
        raise UsageError(
            f"the sheet was drawn with --no-ema ({record_path}: the raw generator); give "
            "--no-ema in step 2 as well"
        )


def checkpoint_has_ema(checkpoint: str | Path) -> bool:
    """Whether a checkpoint holds an EMA of its generator (read from its header only)."""
    from ...io import EMA_PREFIX, read_header

    return bool(read_header(checkpoint).section(EMA_PREFIX))


def _shown(value: Any) -> str:
    """A record value for a message, cut when long (the record may have been edited)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def write_sheet_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a :func:`sheet_record` as pretty JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_sheet_record(sheet: str | Path) -> dict[str, Any]:
    """The JSON record of a sheet image; a missing or malformed record is a UsageError."""
    path = sheet_record_path(sheet)
    if not path.is_file():
        raise UsageError(
            f"{path}: no sheet record; write the sheet first with "
            f"`ganforge arithmetic CHECKPOINT --sheet {sheet}`"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path}: not a readable sheet record: {(str(exc).splitlines() or [''])[0]}"
        ) from None
    missing = [
        key
        for key in ("checkpoint_sha256", "seed", "n")
        if not isinstance(record, dict) or key not in record
    ]
    if not isinstance(record, dict) or record.get("format") != SHEET_FORMAT or missing:
        raise UsageError(
            f"{path}: not a ganforge arithmetic sheet record "
            f"(format {SHEET_FORMAT!r} with seed, n and checkpoint_sha256)"
        )
    return record


def check_sheet_record(
    record: dict[str, Any], checkpoint: str | Path, step: int, record_path: str | Path
) -> None:
    """Refuse (UsageError) a sheet record drawn from another checkpoint than ``checkpoint``."""
    if record["checkpoint_sha256"] != file_sha256(checkpoint):
        raise UsageError(
            f"{record_path}: the sheet was drawn from {record.get('checkpoint', '?')} "
            f"(step {record.get('step', '?')}), not from {checkpoint} (step {step}); "
            f"write a new sheet with `ganforge arithmetic {checkpoint} --sheet ...`"
        )
