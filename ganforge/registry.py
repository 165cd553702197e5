"""The component registry: one object per process, built by :func:`ganforge.load_plugins`.

Names live in a flat name space per kind (as in timm). Every entry remembers the plugin
that registered it, so a duplicate name is reported with both origins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from .errors import RegistrationError, UnknownComponentError
from .kinds import KINDS
from .params import is_params_class
from .structuring import structure_params
from .suggest import did_you_mean


@attrs.frozen
class Entry:
    """One registered component: its kind, name, class and the plugin it came from."""

    kind: str
    name: str
    cls: type[Any]
    origin: str

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Maps ``(kind, name)`` to component classes.

    Use :meth:`register` from a ``ganforge_register`` hook, and :meth:`get`, :meth:`list`
    and :meth:`create` everywhere else.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._origin = "<direct>"

    # -- registration -----------------------------------------------------------------

    @contextmanager
    def registering_as(self, origin: str) -> Iterator[Registry]:
        """Attribute registrations made inside the block to ``origin``.

        If the block raises, everything it registered is removed again, so a plugin that
        fails half-way leaves no trace.
        """
        previous, self._origin = self._origin, origin
        try:
            yield self
        except BaseException:
            self.remove_origin(origin)
            raise
        finally:
            self._origin = previous

    def register(self, kind: str, name: str, cls: type[Any]) -> None:
        """Register ``cls`` as component ``name`` of ``kind``.

        Raises :class:`RegistrationError` for an unknown kind, a class that is not a
        component of that kind, or a name already taken (naming both origins).
        """
        from .interfaces import BASE_CLASSES

        if kind not in self._entries:
            raise RegistrationError(
                f"{self._origin}: unknown kind {kind!r}{did_you_mean(kind, KINDS)}"
            )
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{self._origin}: {kind} name must be a non-empty string")
        base = BASE_CLASSES[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistrationError(
                f"{self._origin}: {kind} {name!r} is {cls!r}, not a subclass of "
                f"{base.__module__}.{base.__qualname__}"
            )
        if not is_params_class(getattr(cls, "Params", None)):
            raise RegistrationError(
                f"{self._origin}: {kind} {name!r} ({cls.__qualname__}) needs a nested "
                "frozen attrs class 'Params'"
            )
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise RegistrationError(
                f"{kind} {name!r} registered twice: by {existing.origin} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by "
                f"{self._origin} ({cls.__module__}.{cls.__qualname__})"
            )
        self._entries[kind][name] = Entry(kind, name, cls, self._origin)

    def remove_origin(self, origin: str) -> None:
        """Forget every entry registered by ``origin``."""
        for entries in self._entries.values():
            for name in [n for n, e in entries.items() if e.origin == origin]:
                del entries[name]

    # -- lookup -----------------------------------------------------------------------

    def entry(self, kind: str, name: str) -> Entry:
        """The :class:`Entry` for ``(kind, name)``; unknown names fail with a suggestion."""
        if kind not in self._entries:
            raise UnknownComponentError(f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}")
        try:
            return self._entries[kind][name]
        except KeyError:
            known = sorted(self._entries[kind])
            hint = did_you_mean(name, known) or (
                f"; known: {', '.join(known)}" if known else f"; no {kind} is registered"
            )
            raise UnknownComponentError(f"unknown {kind} {name!r}{hint}") from None

    def get(self, kind: str, name: str) -> type[Any]:
        """The class registered as ``name`` for ``kind``."""
        return self.entry(kind, name).cls

    def list(self, kind: str, pattern: str = "*") -> list[Entry]:
        """Entries of ``kind`` whose names match the shell-style ``pattern``, sorted."""
        if kind not in self._entries:
            raise UnknownComponentError(f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}")
        return [e for n, e in sorted(self._entries[kind].items()) if fnmatch.fnmatch(n, pattern)]

    def create(self, kind: str, name: str, params: Any = None, **deps: Any) -> Any:
        """Instantiate a component: ``cls(params, **deps)``.

        ``params`` may be ``None`` (all defaults), a mapping (structured strictly, errors
        carry the path ``$.<kind>``) or an instance of the component's ``Params``.
        """
        cls = self.get(kind, name)
        params = self.structure(kind, name, params)
        return cls(params, **deps)

    def structure(self, kind: str, name: str, params: Any, path: str | None = None) -> Any:
        """Turn ``params`` (``None``, mapping or instance) into the component's ``Params``."""
        params_cls = self.get(kind, name).Params
        if params is None:
            params = {}
        if isinstance(params, Mapping):
            return structure_params(params_cls, params, path or f"$.{kind}")
        if not isinstance(params, params_cls):
            raise RegistrationError(
                f"{kind} {name!r} expects {params_cls.__qualname__}, got {type(params).__name__}"
            )
        return params

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._entries.get(kind, {})
