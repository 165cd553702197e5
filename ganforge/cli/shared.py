"""What every command shares: its common options and arguments, loading the plugins (with
one warning line per broken plugin) and a recipe. Kept free of torch imports so that
``ganforge --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from .app import stderr

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..recipe import Recipe

SetOption = typer.Option(None, "--set", "-s", metavar="KEY.PATH=VALUE",
                         help="Override a recipe value (TOML syntax); repeatable.")
RecipeArgument = typer.Argument(..., help="A recipe TOML file, or a recipe by name "
                                "(ganforge:quickstart; see ganforge recipes).",
                                show_default=False)
CheckpointArgument = typer.Argument(..., help="A ganforge .safetensors checkpoint.",
                                    show_default=False)
#: Every command that computes takes ``--device``, ``auto`` (CUDA when present) by default.
DeviceOption = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto.")
ClassOption = typer.Option(None, "--class", help="Conditional generators: the class to draw "
                           "(0 to classes - 1), or all (one row per class; the default).")
NoEmaOption = typer.Option(False, "--no-ema", help="Use the raw generator, not the moving "
                           "average of its weights that the run kept ([ema]).")


def load_plugins_or_warn() -> Plugins:
    """Load plugins, warning (one line each) about any that failed."""
    from ..plugins import load_plugins
    from .app import _debug

    plugins = load_plugins()
    for record in plugins.problems:
        stderr().print(f"[yellow]warning:[/yellow] {escape(record.label)} failed and was "
                       f"skipped: {escape(record.error)}", markup=True)
        if _debug() and record.traceback:
            stderr().print(record.traceback.rstrip(), markup=False, highlight=False)
    return plugins


def load_recipe_file(path: Path, overrides: list[str] | None, plugins: Plugins) -> Recipe:
    """The recipe at ``path`` with ``--set`` ``overrides``, validated against the registry."""
    from ..recipe import load_recipe

    return load_recipe(path, plugins.registry, overrides or [])
