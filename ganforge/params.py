"""Helpers for declaring a component's frozen attrs ``Params`` class.

A component's ``Params`` is a plain ``@attrs.frozen`` class. :func:`param` is a thin
wrapper over :func:`attrs.field` that also stores a one-line description, which
``ganforge components show`` prints next to each field::

    @attrs.frozen
    class Params:
        latent_dim: int = param(100, "size of z", validator=attrs.validators.gt(0))
"""

from __future__ import annotations

from typing import Any

import attrs


def param(default: Any = attrs.NOTHING, doc: str = "", *, validator: Any = None,
          converter: Any = None, factory: Any = None) -> Any:
    """Declare one tunable value: its default, its one-line doc and an optional validator."""
    kwargs: dict[str, Any] = {"metadata": {"doc": doc}}
    if factory is not None:
        kwargs["factory"] = factory
    else:
        kwargs["default"] = default
    if validator is not None:
        kwargs["validator"] = validator
    if converter is not None:
        kwargs["converter"] = converter
    return attrs.field(**kwargs)


def param_doc(field: attrs.Attribute) -> str:
    """The one-line description stored by :func:`param` (empty if none)."""
    return str(field.metadata.get("doc", ""))


def is_params_class(obj: object) -> bool:
    """True for a frozen attrs class, the only shape a component's ``Params`` may have."""
    if not (isinstance(obj, type) and attrs.has(obj)):
        return False
    # attrs has no public "is frozen" query; frozen classes share this __setattr__.
    from attr import _make

    return getattr(obj, "__setattr__", None) is getattr(_make, "_frozen_setattrs", object())
