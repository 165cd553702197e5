"""Plugins' own settings in a recipe (``[plugins.<name>]`` tables): structured against the
class each plugin registered, with every plugin's defaults present even without a table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import RecipeError
from ..core.registry import Registry
from ..core.structuring import Problems, key_path, structure_params
from ..core.suggest import did_you_mean


def build_plugin_settings(data: Any, registry: Registry, problems: Problems) -> dict[str, Any]:
    """Structure the ``[plugins.<name>]`` tables against the classes plugins registered;
    a plugin with settings and no table gets its defaults (a class that has none for some
    field gets nothing: the contract kit's ``check_hooks`` reports it)."""
    if not isinstance(data, Mapping):
        problems.append(("$.plugins", "expected a table of [plugins.<name>] tables"))
        return {}
    settings = {}
    for name, values in data.items():
        path = key_path("$.plugins", name)
        params_cls = registry.settings.get(name)
        if params_cls is None:
            known = sorted(registry.settings)
            hint = did_you_mean(name, known) or (
                f"; plugins with settings: {', '.join(known)}" if known
                else "; no loaded plugin takes settings")
            problems.append((path, f"unknown plugin table{hint}"))
            continue
        if not isinstance(values, Mapping):
            problems.append((path, f"expected a table, got {type(values).__name__}"))
            continue
        try:
            settings[name] = structure_params(params_cls, values, path)
        except RecipeError as exc:
            problems.extend(exc.problems)
    for name, params_cls in registry.settings.items():
        if name not in data:
            try:
                settings[name] = structure_params(params_cls, {}, key_path("$.plugins", name))
            except RecipeError:
                continue
    return settings


def at_defaults(settings: Any) -> bool:
    """True when ``settings`` (a plugin's) equal its class's defaults."""
    try:
        return bool(settings == type(settings)())
    except (TypeError, ValueError):  # a field without a default, or a validator refusing
        return False
