"""The tables a recipe may hold: the fixed component tables, the defaults filled in when a
recipe leaves a table out, and the labelled tables (``[regularizers.<label>]``,
``[callbacks.<label>]``) of which a recipe holds any number."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import RecipeError, UnknownComponentError
from ..core.registry import Registry
from ..core.structuring import Problems, key_path
from .loading import Table

#: Recipe table path -> component kind.
COMPONENT_TABLES: dict[str, str] = {
    "dataset": "dataset",
    "generator": "generator",
    "discriminator": "discriminator",
    "loss": "loss",
    "optimizer.generator": "optimizer",
    "optimizer.discriminator": "optimizer",
    "schedule.generator": "scheduler",
    "schedule.discriminator": "scheduler",
    "augment": "augment",
}

#: Tables filled in when a recipe leaves them out.
DEFAULTS: Table = {
    "loss": {"use": "bce"},
    "optimizer": {"generator": {"use": "adam"}, "discriminator": {"use": "adam"}},
    "schedule": {"generator": {"use": "constant"}, "discriminator": {"use": "constant"}},
    "augment": {"use": "none"},
}

#: Every top-level table a recipe may hold.
TOP_LEVEL = ("run", "eval", "ema", "dataset", "generator", "discriminator", "loss",
             "optimizer", "schedule", "augment", "regularizers", "callbacks", "plugins")
#: What a ``[regularizers.<label>]`` or ``[callbacks.<label>]`` label may look like: it
#: names the logged value (``reg/<label>``) and the component's checkpoint state.
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
#: Tables with one sub-table per network.
PER_NETWORK = ("optimizer", "schedule")
#: Labelled sections: section -> (component kind, what a label names).
LABELLED = {"regularizers": ("regularizer", "it names the logged reg/<label>"),
            "callbacks": ("callback", "it names the callback's checkpoint state")}


def build_labelled(section: str, data: Any, registry: Registry, problems: Problems,
                   choose: Callable[[str, str, Any, str], Any]) -> dict[str, Any]:
    """Structure the ``[<section>.<label>]`` tables, one component each, as
    ``choose(kind, qualified name, params, path)`` by ``<section>.<label>``; every
    problem goes to ``problems``."""
    kind, names = LABELLED[section]
    if not isinstance(data, Mapping):
        problems.append((f"$.{section}", f"expected a table of [{section}.<label>] tables"))
        return {}
    chosen = {}
    for label, table in data.items():
        path = key_path(f"$.{section}", label)
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            problems.append((path, f"a {kind} label is a letter, then letters, digits or _ "
                                   f"(at most 64): {names}"))
            continue
        if not isinstance(table, Mapping) or not isinstance(table.get("use"), str):
            problems.append((f"{path}.use", f"required: the registered {kind} name"))
            continue
        try:
            name = registry.qualified(kind, table["use"])
            params = {k: v for k, v in table.items() if k != "use"}
            chosen[f"{section}.{label}"] = choose(
                kind, name, registry.structure(kind, name, params, path), path)
        except UnknownComponentError as exc:
            problems.append((f"{path}.use", str(exc)))
        except RecipeError as exc:
            problems.extend(exc.problems)
    return chosen
