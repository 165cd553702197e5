"""Checks of a component's ``Params``: a documented frozen attrs class whose defaults
construct and whose validators refuse obviously bad values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ..core.errors import GanforgeError
from ..core.params import is_params_class, param_doc
from ..core.registry import Registry
from .loading import describe
from .report import SkipCheck, fail

#: Values no sensible validator of a field of that type lets through (one refusal is
#: enough to show the validator works).
_NUMBERS: tuple[Any, ...] = (-1, -(10**12), 10**30, 0, math.nan, math.inf, -math.inf)
_STRINGS: tuple[Any, ...] = ("\x00not-a-valid-value\x00", "", "x" * 10_000)
_SEQUENCES: tuple[Any, ...] = ((), (-1.0, -1.0), (math.nan, math.nan), ("\x00",))
_ANYTHING: tuple[Any, ...] = (*_NUMBERS, *_STRINGS, *_SEQUENCES, None)


def bad_values(field: attrs.Attribute) -> tuple[Any, ...]:
    """The obviously bad values tried on ``field``, chosen by its annotation."""
    annotation = str(field.type or "")
    if any(word in annotation for word in ("tuple", "list", "Sequence")):
        return _SEQUENCES
    if "int" in annotation or "float" in annotation:
        return _NUMBERS
    if "str" in annotation:
        return _STRINGS
    return _ANYTHING


def check_params(cls: type) -> None:
    """``cls.Params`` is a frozen attrs class, every field has a doc (``ganforge.param``)
    and the defaults construct (when every field has a default)."""
    params_cls = getattr(cls, "Params", None)
    if not is_params_class(params_cls):
        raise fail(f"Params of {cls.__qualname__} must be a frozen attrs class "
                   "(@attrs.frozen)")
    assert params_cls is not None
    fields = attrs.fields(params_cls)
    undocumented = [f.name for f in fields if not param_doc(f).strip()]
    if undocumented:
        raise fail(f"Params fields without a doc: {', '.join(undocumented)} (declare each "
                   "with ganforge.param(default, \"one-line doc\"))")
    if not required_fields(cls):
        try:
            params_cls()
        except Exception as error:
            raise fail(f"Params() with the defaults raised {type(error).__name__}: "
                       f"{error}") from error


def required_fields(cls: type) -> list[str]:
    """Fields of ``cls.Params`` without a default (a recipe must set them)."""
    params_cls = getattr(cls, "Params", None)
    if not (isinstance(params_cls, type) and attrs.has(params_cls)):
        return []
    return [f.name for f in attrs.fields(params_cls) if f.default is attrs.NOTHING]


def structure(registry: Registry, kind: str, name: str, given: Any) -> Any:
    """The params the component is checked with: ``given`` (None, a mapping or a Params
    instance) structured as a recipe table would be; the defaults when None."""
    required = required_fields(registry.get(kind, name))
    if given is None and required:
        raise SkipCheck(f"Params fields without a default ({', '.join(required)}): pass "
                        "params= to check the component")
    return registry.structure(kind, name, given)


def params_mapping(given: Any) -> dict[str, Any]:
    """``given`` (None, a mapping or a Params instance) as a recipe table's params."""
    from ..core.structuring import unstructure_params

    if given is None:
        return {}
    if isinstance(given, Mapping):
        return dict(given)
    return unstructure_params(given)


def check_validators(params: Any) -> None:
    """Each field that has a validator refuses at least one obviously bad value (with a
    ``ValueError``, ``TypeError`` or ganforge error); fields without validators are not
    checked."""
    if params is None:
        raise SkipCheck("no params to start from")
    checked = 0
    for field in attrs.fields(type(params)):
        if field.validator is None or not field.init:
            continue
        checked += 1
        tried = bad_values(field)
        refused = False
        for value in tried:
            try:
                attrs.evolve(params, **{field.alias or field.name: value})
            except (ValueError, TypeError, GanforgeError):
                refused = True
                break
            except Exception as error:
                raise fail(f"the validator of field {field.name!r} crashed on "
                           f"{describe(value)}: {type(error).__name__}: {error} (a "
                           "validator raises ValueError or TypeError)") from error
        if not refused:
            raise fail(f"the validator of field {field.name!r} accepted every obviously "
                       f"bad value tried: {', '.join(describe(v) for v in tried)}")
    if not checked:
        raise SkipCheck("no field has a validator")
