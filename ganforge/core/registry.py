"""The component registry: one object per process, built by :func:`ganforge.load_plugins`.

Every component has a **qualified name** ``<plugin>:<name>`` (the built-ins are
``ganforge:<name>``, the shipped DCGAN plugin's ``dcgan:dcgan``), always accepted, and a
**short name** ``<name>``. Two plugins may register the same short name: neither is
withdrawn, each stays usable by its qualified name. A short name resolves to the one
component that has it; when several have it, the one shipped with ganforge (the built-ins
and ganforge's own plugin distributions) keeps the short name, and otherwise using it is
an error listing the qualified choices, so it is never resolved silently to one of them.
Recipes record qualified names once resolved.
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

#: The distributions shipped with ganforge: their components keep their short names when
#: a third-party plugin registers the same one.
SHIPPED_DISTRIBUTIONS = frozenset({"ganforge", "ganforge-dcgan", "ganforge-resnet"})


@attrs.frozen
class Entry:
    """One registered component: its kind, short name, class, the plugin it came from
    (``origin``: a label for messages; ``plugin``: the qualifier of its name) and whether
    it ships with ganforge."""

    kind: str
    name: str
    cls: type[Any]
    origin: str
    plugin: str = ""
    shipped: bool = False

    @property
    def qualified(self) -> str:
        """``<plugin>:<name>``, the name that always means this component."""
        return f"{self.plugin}:{self.name}" if self.plugin else self.name

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def split_qualified(name: str) -> tuple[str | None, str]:
    """``("plugin", "name")`` for ``"plugin:name"``, ``(None, name)`` for a short name."""
    plugin, sep, short = name.rpartition(":")
    return (plugin, short) if sep else (None, name)


class Registry:
    """Maps ``(kind, name)`` to component classes.

    Use :meth:`register` from a ``ganforge_register`` hook, and :meth:`get`, :meth:`list`
    and :meth:`create` everywhere else. Names may be qualified (``plugin:name``) or short.
    """

    def __init__(self) -> None:
        #: kind -> qualified name -> entry
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        #: plugin name -> the frozen attrs class of its ``[plugins.<name>]`` recipe table
        self.settings: dict[str, type] = {}
        self._settings_origin: dict[str, str] = {}
        #: plugin name -> why it failed to load (set by :func:`ganforge.plugins.load_plugins`)
        self.failed: dict[str, str] = {}
        self._origin = "<direct>"
        self._plugin = ""
        self._shipped = False

    # -- registration -----------------------------------------------------------------

    @contextmanager
    def registering_as(self, origin: str, plugin: str = "", shipped: bool = False
                       ) -> Iterator[Registry]:
        """Attribute registrations made inside the block to ``origin`` (a label for
        messages), qualified by ``plugin``; ``shipped`` for ganforge's own distributions.

        If the block raises, everything it registered is removed again, so a plugin that
        fails half-way leaves no trace.
        """
        saved = self._origin, self._plugin, self._shipped
        self._origin, self._plugin, self._shipped = origin, plugin, shipped
        try:
            yield self
        except BaseException:
            self.remove_origin(origin)
            raise
        finally:
            self._origin, self._plugin, self._shipped = saved

    def register(self, kind: str, name: str, cls: type[Any]) -> None:
        """Register ``cls`` as component ``name`` of ``kind`` (qualified as
        ``<plugin>:<name>``).

        Raises :class:`RegistrationError` for an unknown kind, a bad name, a class that is
        not a component of that kind, or a name this same plugin already registered. A
        name another plugin registered is no error: both stay usable by qualified name.
        """
        from .interfaces import BASE_CLASSES

        if kind not in self._entries:
            raise RegistrationError(
                f"{self._origin}: unknown kind {kind!r}{did_you_mean(kind, KINDS)}"
            )
        if not isinstance(name, str) or not name or ":" in name:
            raise RegistrationError(f"{self._origin}: {kind} name must be a non-empty string "
                                    f"without ':' (got {name!r})")
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
        entry = Entry(kind, name, cls, self._origin, self._plugin, self._shipped)
        existing = self._entries[kind].get(entry.qualified)
        if existing is not None:
            raise RegistrationError(
                f"{kind} {entry.qualified!r} registered twice: by {existing.origin} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by "
                f"{self._origin} ({cls.__module__}.{cls.__qualname__})"
            )
        self._entries[kind][entry.qualified] = entry

    def register_settings(self, params_cls: type) -> None:
        """Register the frozen attrs class that validates this plugin's own recipe table,
        ``[plugins.<plugin>]`` (its values are recorded with the run)."""
        if not self._plugin:
            raise RegistrationError(f"{self._origin}: register_settings needs a plugin name")
        if not is_params_class(params_cls):
            raise RegistrationError(f"{self._origin}: settings must be a frozen attrs class, "
                                    f"got {params_cls!r}")
        if self._plugin in self.settings:
            raise RegistrationError(f"{self._origin}: settings registered twice")
        self.settings[self._plugin] = params_cls
        self._settings_origin[self._plugin] = self._origin

    def remove_origin(self, origin: str) -> None:
        """Forget every entry (and settings class) registered by ``origin``."""
        for entries in self._entries.values():
            for name in [n for n, e in entries.items() if e.origin == origin]:
                del entries[name]
        for plugin in [p for p, o in self._settings_origin.items() if o == origin]:
            del self.settings[plugin], self._settings_origin[plugin]

    # -- lookup -----------------------------------------------------------------------

    def entry(self, kind: str, name: str) -> Entry:
        """The :class:`Entry` for ``(kind, name)``, ``name`` qualified or short; unknown and
        ambiguous names fail with one line (a suggestion, or the qualified choices)."""
        if kind not in self._entries:
            raise UnknownComponentError(f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}")
        if not isinstance(name, str):
            raise UnknownComponentError(f"{kind} name must be a string, got {name!r}")
        entries = self._entries[kind]
        plugin, short = split_qualified(name)
        if plugin is not None:
            found = entries.get(name)
            if found is not None:
                return found
            if plugin in self.failed:
                raise UnknownComponentError(f"unknown {kind} {name!r}: {self.failed[plugin]}")
            if plugin not in {e.plugin for k in self._entries.values() for e in k.values()}:
                raise UnknownComponentError(f"unknown {kind} {name!r}: no plugin {plugin!r} is "
                                            "loaded (is its distribution installed?)")
            raise UnknownComponentError(f"unknown {kind} {name!r}{self._hint(kind, name)}")
        matches = [e for e in entries.values() if e.name == short]
        if len(matches) == 1:
            return matches[0]
        shipped = [e for e in matches if e.shipped]
        if len(shipped) == 1:
            return shipped[0]
        if matches:
            choices = ", ".join(sorted(e.qualified for e in matches))
            raise UnknownComponentError(f"{kind} {name!r} is registered by several plugins; "
                                        f"use one of {choices}")
        raise UnknownComponentError(f"unknown {kind} {name!r}{self._hint(kind, name)}")

    def _hint(self, kind: str, name: str) -> str:
        known = self.names(kind)
        hint = did_you_mean(name, known) or (
            f"; known: {', '.join(known)}" if known else f"; no {kind} is registered")
        # A component of a plugin that did not load is "unknown": say which plugin failed.
        return hint + "".join(f"; {why}" for why in self.failed.values())

    def shadowing(self, kind: str, name: str) -> str:
        """One line when the short ``name`` goes to a shipped component although other
        plugins register the same short name (their components need the qualified name);
        "" for qualified and unambiguous names."""
        plugin, short = split_qualified(name)
        if plugin is not None or kind not in self._entries:
            return ""
        group = [e for e in self._entries[kind].values() if e.name == short]
        shipped = [e for e in group if e.shipped]
        if len(group) < 2 or len(shipped) != 1:
            return ""
        others = ", ".join(sorted(e.qualified for e in group if not e.shipped))
        return (f"{kind} {short!r} means the shipped {shipped[0].qualified}; {others} "
                "registers the same short name (write the qualified name to choose it)")

    def shadowed(self) -> list[tuple[Entry, str]]:
        """Every component whose short name goes to a shipped component instead, with the
        one-line note of :meth:`shadowing`."""
        return [(e, self.shadowing(kind, e.name)) for kind, entries in self._entries.items()
                for e in entries.values() if not e.shipped and self.shadowing(kind, e.name)]

    def names(self, kind: str) -> list[str]:
        """The names to write for ``kind``: short where it resolves to one component,
        qualified otherwise, sorted."""
        shown = []
        for entry in self._entries[kind].values():
            try:
                unique = self.entry(kind, entry.name) is entry
            except UnknownComponentError:
                unique = False
            shown.append(entry.name if unique else entry.qualified)
        return sorted(shown)

    def plugins(self) -> set[str]:
        """The qualifiers (plugin names) of every registered component."""
        return {e.plugin for entries in self._entries.values() for e in entries.values()}

    def qualified(self, kind: str, name: str) -> str:
        """The qualified name of the component ``name`` means."""
        return self.entry(kind, name).qualified

    def get(self, kind: str, name: str) -> type[Any]:
        """The class registered as ``name`` for ``kind``."""
        return self.entry(kind, name).cls

    def list(self, kind: str, pattern: str = "*") -> list[Entry]:
        """Entries of ``kind`` whose short or qualified names match the shell-style
        ``pattern``, sorted by qualified name."""
        if kind not in self._entries:
            raise UnknownComponentError(f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}")
        return [e for n, e in sorted(self._entries[kind].items())
                if fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(n, pattern)]

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
        try:
            self.entry(kind, name)
        except UnknownComponentError:
            return False
        return True
