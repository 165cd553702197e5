"""``ganforge recipes``: the recipes each package ships, by the names ``extends`` takes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .app import app, reports_errors


def _summary(path: Path) -> str:
    """The first comment line of a recipe file, without its ``#``; "" if none."""
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


@app.command()
@reports_errors
def recipes() -> None:
    """List the recipes ganforge and the installed plugins ship, by name
    (``extends = "ganforge:quickstart"``, ``ganforge run ganforge:quickstart``)."""
    from ..recipe.loading import shipped_recipes

    table = Table(title="shipped recipes")
    table.add_column("name", no_wrap=True)  # what extends takes: never cut short
    table.add_column("file", overflow="fold")
    table.add_column("about")
    for package, found in shipped_recipes().items():
        for name, path in found.items():
            table.add_row(f"{package}:{name}", str(path), _summary(path))
    Console().print(table)
