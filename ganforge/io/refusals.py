"""Refusing a file in one line, whatever the file holds.

A name or value taken from an untrusted file (a checkpoint, an exported folder's
``config.json``) is shown through :func:`quoted`: escaped and cut short, so a terminal escape
or a megabyte-long key cannot turn an error into something else. :func:`refusal` makes the
one :class:`~ganforge.core.errors.CheckpointError` line naming the file; the JSON helpers refuse a
key given twice (parsers disagree on which one wins).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError, RecipeError

# Every character ``str.splitlines`` breaks on, shown escaped so an error stays one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}

#: Characters of a safetensors error shown in a refusal: its messages quote names and values
#: from the file, and a hostile file must not turn one error line into megabytes.
_LIBRARY_CHARS = 300


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def refusal(path: Path | str, reason: str) -> CheckpointError:
    """The error for ``path``, as one line whatever the file put in names or values (also
    the error of :mod:`~ganforge.training.checkpoint_checks`)."""
    return CheckpointError(_one_line(f"{path}: {reason}"))


def quoted(value: Any, limit: int = 60) -> str:
    """A name or value from the file, quoted and escaped, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class DuplicateKey(ValueError):
    """A JSON object gave this key twice (:func:`no_duplicate_keys`)."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (JSON parsers disagree on which wins)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def kind(value: Any) -> str:
    """What a decoded JSON value is, in words."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (JSON ``true`` decodes to one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def library_problem(exc: BaseException) -> str:
    """A safetensors error as ``not a valid safetensors checkpoint: <its words>``, cut to
    :data:`_LIBRARY_CHARS` and with every unprintable character (a terminal escape in a
    tensor name) escaped."""
    text = str(exc)
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:_LIBRARY_CHARS])
    more = "..." if len(text) > _LIBRARY_CHARS else ""
    return f"not a valid safetensors checkpoint: {shown}{more}"


def problems_line(exc: RecipeError, shown: int = 5, chars: int = 200) -> str:
    """A :class:`~ganforge.core.errors.RecipeError`'s problems as one bounded line: at most
    ``shown`` problems of at most ``chars`` characters each (a hostile file must not turn
    one error line into megabytes)."""
    parts = [f"{where}: {message}"[:chars] for where, message in exc.problems[:shown]]
    more = len(exc.problems) - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
