"""Turning plain data (parsed TOML) into a component's frozen attrs ``Params``.

The cattrs converter is strict: unknown keys are refused with a "did you mean" hint,
numbers are not silently truncated, strings are not parsed into numbers, and every
problem of one table is reported at once with its path (``$.generator.width``).
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from .errors import RecipeError
from .suggest import did_you_mean

Problems = list[tuple[str, str]]


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_describe(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer past 1.8e308
        raise ValueError("expected a number, got an integer too large for a float") from None


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _strict_str(value: Any, _type: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


@functools.cache
def converter() -> cattrs.Converter:
    """The process-wide strict converter (stateless once built, so caching is safe)."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    return conv


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(path: str, key: Any) -> str:
    """``path.key``, quoting ``key`` as TOML does unless it is a bare key (``$.run."a b"``),
    so that a path stays on one line whatever the key holds (a line break, a dot, nothing)."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}.{json.dumps(str(key))}"


def unknown_key_problems(params_cls: type, data: Mapping[str, Any], path: str) -> Problems:
    """One problem per key of ``data`` that ``params_cls`` has no field for."""
    names = [f.name for f in attrs.fields(params_cls)]
    return [
        (key_path(path, key), f"unknown key{did_you_mean(key, names)}")
        for key in data
        if key not in names
    ]


def _flatten(exc: BaseException, path: str) -> Problems:
    """Turn a cattrs validation tree into (path, message) pairs."""
    if isinstance(exc, ClassValidationError | IterableValidationError | ExceptionGroup):
        problems: Problems = []
        for sub in exc.exceptions:
            problems.extend(_flatten(sub, path + _note_suffix(sub)))
        return problems
    return [(path, _message(exc))]


def _note_suffix(exc: BaseException) -> str:
    for note in getattr(exc, "__notes__", []):
        if isinstance(note, AttributeValidationNote):
            return f".{note.name}"
        if isinstance(note, IterableValidationNote):
            return f"[{note.index}]"
    return ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required key is missing"
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = first.strip()
    # attrs validators say e.g. "'width' must be > 0: -3"; that is clear as it is.
    return text.splitlines()[0] if text else type(exc).__name__


def structure_params(params_cls: type, data: Mapping[str, Any], path: str = "$") -> Any:
    """Build ``params_cls`` from ``data`` or raise :class:`RecipeError` with every problem.

    Each field is converted and validated on its own so that one pass reports every
    unknown key, wrong type and failed validator; the class is built only when all pass.
    """
    if not isinstance(data, Mapping):
        raise RecipeError.single(path, f"expected a table, got {_describe(data)}")
    attrs.resolve_types(params_cls)
    problems = unknown_key_problems(params_cls, data, path)
    values: dict[str, Any] = {}
    for field in attrs.fields(params_cls):
        name = field.alias or field.name
        if name not in data:
            if field.default is attrs.NOTHING:
                problems.append((f"{path}.{name}", "required key is missing"))
            continue
        if typing.get_origin(field.type) in (tuple, list) and not isinstance(
            data[name], list | tuple
        ):
            problems.append((f"{path}.{name}", f"expected an array, got {_describe(data[name])}"))
            continue
        try:
            value = converter().structure(data[name], field.type)
            if field.validator is not None:
                field.validator(None, field, value)
        except (ClassValidationError, IterableValidationError, ExceptionGroup) as exc:
            problems.extend(_flatten(exc, f"{path}.{name}"))
            continue
        except (TypeError, ValueError) as exc:
            problems.append((f"{path}.{name}", _message(exc)))
            continue
        values[name] = value
    if problems:
        raise RecipeError(problems)
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as exc:  # cross-field checks in __attrs_post_init__
        raise RecipeError.single(path, _message(exc)) from None


def unstructure_params(params: Any) -> dict[str, Any]:
    """The plain-data form of a ``Params`` instance (tuples become lists, as in TOML)."""
    data = converter().unstructure(params)
    return _lists(data)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
