"""Registries for contract tests: a plugin loaded whether or not it is installed, and the
lookup of ``<plugin>:<name>`` or short component names."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pluggy

from ..core import hookspecs
from ..core.registry import Entry, Registry
from ..plugins import Plugins, load_plugins

#: ``registry`` arguments of the kit accept any of these (None: the installed plugins).
RegistryLike = Registry | Plugins | None

#: The qualifier of the built-in components' names (``ganforge:bce``), and the name of
#: the plugin record that registers them.
BUILTIN_NAMES = ("ganforge", "builtins")


def load_plugin(name: str, module: ModuleType | str) -> Plugins:
    """Every installed plugin plus ``module`` as plugin ``name``, whether or not it is
    installed too: ``load_plugins(extra=[(name, module)])``.

    ``module`` is the module that holds the hook implementations (the entry point's
    target), or its dotted name. An installed plugin of the same name and module is loaded
    once. Any other plugin failure (an import error, a hook that raises, a name taken by
    another plugin) fails the test with the plugin's own message.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    blocked = {p.strip() for p in os.environ.get("GANFORGE_DISABLE_PLUGINS", "").split(",")}
    plugins = load_plugins(strict=False, disabled=blocked - {name, ""},
                           extra=[(name, module)])
    loaded = [r for r in plugins.records if r.name == name and r.status == "loaded"]
    if not loaded:
        problems = "; ".join(f"{r.label}: {r.error}" for r in plugins.records
                             if r.name.split(" ")[0] == name) or "not loaded"
        raise AssertionError(f"plugin {name!r} could not be loaded: {problems}")
    # An installed plugin of the same name loaded first: it must be this very module, or
    # the test would check another copy of the code than the one it imported.
    registered = plugins.manager.get_plugin(name)
    if registered is not None and registered is not module:
        raise AssertionError(
            f"plugin {name!r} is installed from {getattr(registered, '__file__', registered)}"
            f", not from the module under test {getattr(module, '__file__', module)}")
    return plugins


def plugin_registry(name: str, module: ModuleType | str) -> Registry:
    """The :class:`Registry` of :func:`load_plugin` (installed plugins plus this one).

    Use it from a fixture::

        @pytest.fixture(scope="module")
        def registry():
            return plugin_registry("lsgan", "ganforge_lsgan")
    """
    return load_plugin(name, module).registry


def as_plugins(registry: RegistryLike) -> Plugins:
    """``registry`` as a :class:`Plugins` object (what :func:`ganforge.training.train`
    takes): loaded plugins are returned as they are, a bare registry gets a manager with no
    observers, ``None`` is :func:`ganforge.load_plugins`."""
    if registry is None:
        return load_plugins()
    if isinstance(registry, Plugins):
        return registry
    manager = pluggy.PluginManager("ganforge")
    manager.add_hookspecs(hookspecs)
    return Plugins(manager=manager, registry=registry, records=[])


def as_registry(registry: RegistryLike) -> Registry:
    """The :class:`Registry` of a ``registry`` argument."""
    if isinstance(registry, Registry):
        return registry
    return as_plugins(registry).registry


def entry_plugin(entry: Entry) -> str:
    """The qualifier of ``entry``'s name: its plugin's name (``ganforge`` for the core)."""
    return entry.plugin or entry.origin


def same_plugin(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same plugin (``builtins``, the name of the core's
    plugin record, is ``ganforge``)."""
    return a == b or {a, b} <= set(BUILTIN_NAMES)


def plugin_entries(registry: Registry, plugin: str) -> list[Entry]:
    """Every entry ``plugin`` registered, kind by kind."""
    from ..core.kinds import KINDS

    return [e for kind in KINDS for e in registry.list(kind)
            if same_plugin(entry_plugin(e), plugin)]


def describe(value: Any) -> str:
    """A short one-line description of ``value`` for a failure message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
