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

    console = Console()
    rows = [(f"{package}:{name}", str(path), _summary(path))
            for package, found in shipped_recipes().items() for name, path in found.items()]
    if not console.is_terminal:
        # Piped or captured: plain lines, whole names whatever the width.
        for name, path, about in rows:
            console.print(f"{name}  {path}" + (f"  # {about}" if about else ""),
                          markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title="shipped recipes")
    table.add_column("name", overflow="fold")  # what extends takes: folded, never cut short
    table.add_column("file", overflow="fold")
    table.add_column("about")
    for name, path, about in rows:
        table.add_row(name, path, about)
    console.print(table)
