"""Issue 26, round two: rough edges for plugin authors and researchers (items 3, 4, 5, 7,
8 and 9)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ganforge.cli import app

ROOT = Path(__file__).parent.parent


# -- 4. docs/recipes.md names every allowed top-level table ------------------------------


def test_recipes_doc_lists_the_top_level_tables() -> None:
    from ganforge.recipe.model import _TOP_LEVEL

    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    start = text.index("The allowed top-level tables are")
    paragraph = text[start:text.index("Any other top-level name", start)]
    listed = {name for line in paragraph.splitlines() if line.startswith("- ")
              for name in re.findall(r"`([a-z]+)`", line.split(":")[0])}
    assert listed == set(_TOP_LEVEL)
    assert f"these {_number(len(_TOP_LEVEL))}" in paragraph
    assert "six" not in paragraph


def _number(n: int) -> str:
    return {11: "eleven", 12: "twelve", 13: "thirteen"}.get(n, str(n))


# -- 5. ganforge recipes: each recipe once, names whole ----------------------------------


def test_recipes_are_listed_once_under_their_owner() -> None:
    from ganforge.recipe.loading import _find_named, shipped_recipes

    found = shipped_recipes()
    assert "quickstart" in found["ganforge"]
    # wandb and mlflow are ganforge's own entry points: same folder, not listed again
    assert "wandb" not in found and "mlflow" not in found
    # ... but their names still resolve
    assert _find_named("wandb:quickstart") == found["ganforge"]["quickstart"]


def test_recipes_command_never_cuts_names() -> None:
    result = CliRunner().invoke(app, ["recipes"], env={"COLUMNS": "30"})
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert "ganforge:ablations/loss_norm_penalty_cifar10" in names
    assert "ganforge:quickstart_conditional" in names
    assert not any(name.startswith(("wandb:", "mlflow:")) for name in names)
    assert len(names) == len(set(names))
    assert "…" not in result.output
