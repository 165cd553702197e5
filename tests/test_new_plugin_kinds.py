"""``ganforge new plugin --kinds`` with the kinds added to the template (regularizer,
augment, extractor, and the scheduler): each generated component passes ganforge's contract
kit, the recipe uses them, and the plugin has a settings table and an observer hook. One
generated plugin, imported from its folder (nothing installed), serves every test."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.cli import app

NEW_KINDS = ("scheduler", "regularizer", "augment", "extractor")
NAME = "kindgen"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, object]]:
    """The plugin written with the new kinds, and a registry that loaded it."""
    from ganforge.testing import plugin_registry

    out = tmp_path_factory.mktemp("new-kinds") / f"ganforge-{NAME}"
    result = CliRunner().invoke(app, ["new", "plugin", NAME, "--out", str(out), "--kinds",
                                      ",".join(NEW_KINDS)])
    assert result.exit_code == 0, result.output
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(out))
        try:
            yield out, plugin_registry(NAME, f"ganforge_{NAME}.plugin")
        finally:
            for module in [m for m in sys.modules if m.startswith(f"ganforge_{NAME}")]:
                del sys.modules[module]
            importlib.invalidate_caches()


def test_the_files_and_the_command_line(generated) -> None:
    out, _ = generated
    modules = sorted(p.name for p in (out / f"ganforge_{NAME}").glob("*.py"))
    assert modules == ["__init__.py", "augment.py", "extractor.py", "plugin.py",
                       "regularizer.py", "scheduler.py"]
    recipe = tomllib.loads((out / f"ganforge_{NAME}" / "recipes" / f"{NAME}_quick.toml")
                           .read_text())
    assert recipe["regularizers"]["drift"]["use"] == f"{NAME}:drift"
    assert recipe["augment"]["use"] == f"{NAME}:brightness_contrast"
    assert recipe["schedule"]["generator"]["use"] == f"{NAME}:step_decay"
    assert recipe["generator"]["use"] == "dcgan:dcgan"  # networks borrowed
    readme = (out / "README.md").read_text()
    assert f"`{NAME}:colour_stats`" in readme and f"[plugins.{NAME}]" in readme
    assert "{{" not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize(("kind", "short"), [
    ("scheduler", "step_decay"),
    ("regularizer", "drift"),
    ("augment", "brightness_contrast"),
    ("extractor", "colour_stats"),
])
def test_each_new_kind_keeps_the_contract(generated, kind: str, short: str) -> None:
    from ganforge.testing import check_component

    _, registry = generated
    report = check_component(kind, f"{NAME}:{short}", registry=registry)
    assert not report.failures


def test_settings_table_is_registered_and_read_by_the_observer(generated, capsys) -> None:
    from ganforge.recipe.model import build_recipe

    out, registry = generated
    plugin = importlib.import_module(f"ganforge_{NAME}.plugin")
    assert registry.settings[NAME] is plugin.Settings
    raw = tomllib.loads((out / f"ganforge_{NAME}" / "recipes" / f"{NAME}_quick.toml")
                        .read_text())
    built = build_recipe({**raw, "plugins": {NAME: {"announce": True}}}, registry)
    assert built.plugins[NAME] == plugin.Settings(announce=True)
    with pytest.raises(Exception, match=rf"\$\.plugins\.{NAME}"):
        build_recipe({**raw, "plugins": {NAME: {"anounce": True}}}, registry)
    plugin.ganforge_run_started(Path("run"), {"plugins": {NAME: {"announce": True}}}, 5)
    assert capsys.readouterr().out == f"[{NAME}] run run starts at step 5\n"


def test_quick_recipe_with_the_regularizer_and_augment_trains_and_resumes(generated) -> None:
    from ganforge.testing import check_training

    out, registry = generated
    # The recipe borrows the shipped dcgan plugin's networks; the test command installs it.
    assert ("generator", "dcgan:dcgan") in registry, "install plugins/dcgan (pip install -e)"
    check_training(out / f"ganforge_{NAME}" / "recipes" / f"{NAME}_quick.toml",
                   overrides=["run.batch_size=4"], registry=registry)
