"""What the API functions share: the installed plugins (loaded once per call when the
caller gives none) and a recipe from whatever a caller holds (a file, a name, a table or a
:class:`~ganforge.recipe.Recipe`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..recipe import Recipe

#: Where the API sends the messages a command line prints (``None``: nowhere).
Note = Callable[[str], None] | None



def plugins_or_installed(plugins: Plugins | None) -> Plugins:
    """``plugins`` when given, else the installed plugins (a broken plugin is recorded in
    ``Plugins.problems`` and skipped, as the command line does)."""
    if plugins is not None:
        return plugins
    from ..plugins import load_plugins

    return load_plugins()


def recipe_from(recipe: str | Path | Recipe | Mapping[str, Any], plugins: Plugins,
                overrides: Sequence[str] = ()) -> Recipe:
    """A validated recipe from a file or a recipe by name (``ganforge:quickstart``), a
    plain table, or a :class:`Recipe`; ``overrides`` are ``--set`` strings
    (``"run.steps=100"``) applied before validation. Errors are :class:`RecipeError`
    naming every problem with its ``$.path``."""
    from ..recipe import Recipe, apply_overrides, build_recipe, load_recipe

    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        return build_recipe(apply_overrides(recipe.to_dict(), overrides), plugins.registry,
                            source="recipe + overrides")
    if isinstance(recipe, Mapping):
        return build_recipe(apply_overrides(recipe, overrides), plugins.registry,
                            source="recipe table")
    return load_recipe(recipe, plugins.registry, list(overrides))


def recipe_name(recipe: str | Path | Recipe | Mapping[str, Any]) -> str:
    """The name a run directory takes by default: a file's stem, the last part of a recipe
    by name (``ganforge:ablations/x`` -> ``ablations_x``), ``run`` for a table or a
    :class:`Recipe`."""
    if isinstance(recipe, str | Path):
        path = Path(recipe)
        if path.suffix == ".toml" or ":" not in str(recipe):
            return path.stem
        return str(recipe).rpartition(":")[2].replace("/", "_")
    return "run"
