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

#: Digits of a number shown whole in a validator's message; longer ones are abbreviated.
_SHOWN_DIGITS = 24


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


@attrs.frozen(repr=False)
class _AtMost:
    """The validator :func:`at_most` returns (a class, so that it shows as ``<= N``)."""

    limit: int | float

    def __call__(self, _instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value > self.limit:
            raise ValueError(f"'{attribute.name}' must be <= {self.limit}: {_short(value)}")

    def __repr__(self) -> str:
        return f"<at_most {self.limit}>"


def at_most(limit: int | float) -> Any:
    """A validator refusing values above ``limit``, worded like attrs' own (``'x' must be
    <= 8: 9``). A recipe value is untrusted input: an unbounded count of workers, batches
    or steps forks, allocates or runs until the machine gives out, so every count needs a
    ceiling. Values of many digits are abbreviated to keep the message one short line."""
    return _AtMost(limit)


def _short(value: Any) -> str:
    # Checked before str(): past 4300 digits str() of an int raises ValueError.
    if isinstance(value, int) and abs(value) >= 10**_SHOWN_DIGITS:
        return f"an integer of more than {_SHOWN_DIGITS} digits"
    return str(value)


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
