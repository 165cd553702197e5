"""The plugin in docs/writing-plugins.md is real: found by its entry point, used by a recipe."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ganforge import load_plugins
from ganforge.recipe import load_recipe
from ganforge.training import train

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "ganforge-lsgan"


def test_example_plugin_trains(fake_dist, tmp_path: Path, capsys) -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    entry = project["project"]["entry-points"]["ganforge"]
    assert entry == {"lsgan": "ganforge_lsgan"}
    fake_dist(project["project"]["name"], "ganforge_lsgan",
              (EXAMPLE / "ganforge_lsgan.py").read_text(), entry="lsgan")
    plugins = load_plugins()
    record = next(r for r in plugins.records if r.name == "lsgan")
    assert (record.status, record.distribution) == ("loaded", "ganforge-lsgan")
    recipe = load_recipe(EXAMPLE / "lsgan_digits.toml", plugins.registry,
                         ["run.steps=2", "run.batch_size=16", "run.device=cpu"])
    assert recipe["loss"].name == "lsgan:least_squares"
    assert recipe["dataset"].name == "ganforge:digits"  # inherited from the quickstart
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.step == 2 and result.last_metrics["loss_d"] > 0
    assert "[lsgan] checkpoint at step 2" in capsys.readouterr().out
