"""Recipes: TOML files that name a component per table, merged and validated.

Loading goes TOML -> ``extends`` chain merged -> ``--set`` overrides -> defaults ->
structured into each component's ``Params`` (:func:`load_recipe`). The result is a
:class:`Recipe` that renders back to one flat TOML file (:meth:`Recipe.to_toml`).
"""

from .loading import (
                      apply_overrides,
                      apply_settings,
                      load_raw,
                      merge,
                      parse_override,
                      read_toml,
                      set_path,
)
from .model import (
                    COMPONENT_TABLES,
                    ComponentChoice,
                    EMAParams,
                    EvalParams,
                    Recipe,
                    RunParams,
                    build_recipe,
                    load_recipe,
                    run_notes,
)

__all__ = [
    "COMPONENT_TABLES",
    "ComponentChoice",
    "EMAParams",
    "EvalParams",
    "Recipe",
    "RunParams",
    "apply_overrides",
    "apply_settings",
    "build_recipe",
    "load_raw",
    "load_recipe",
    "merge",
    "parse_override",
    "read_toml",
    "run_notes",
    "set_path",
]
