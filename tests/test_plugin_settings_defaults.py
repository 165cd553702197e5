"""A plugin's settings are in every resolved recipe, at their defaults without a
``[plugins.<name>]`` table (issue 26, item 2), and the contract kit's ``check_hooks`` runs a
plugin's observer hooks through a short real run."""

from __future__ import annotations

import tomllib
import types
from pathlib import Path
from typing import Any

import attrs
import pytest

from ganforge import hookimpl, param
from ganforge.recipe import load_recipe
from ganforge.testing import check_hooks, load_plugin
from ganforge.training import train

NAME = "settingsdemo"


def settings_plugin(name: str = NAME, raise_in: str | None = None) -> types.ModuleType:
    """A plugin module with settings and an observer hook that reads them straight from the
    recipe table (``recipe["plugins"][name]``, no fallback); ``raise_in`` names an observer
    hook that raises."""

    @attrs.frozen
    class Settings:
        """The demo plugin's settings."""

        greeting: str = param("hello", "what the observer records")

    module = types.ModuleType(f"{name}_plugin")
    module.Settings = Settings  # type: ignore[attr-defined]
    module.SEEN = []  # type: ignore[attr-defined]

    @hookimpl
    def ganforge_register(registry: Any) -> None:
        registry.register_settings(Settings)

    @hookimpl
    def ganforge_run_started(run_dir: Path, recipe: dict[str, Any], step: int) -> None:
        module.SEEN.append(recipe["plugins"][name]["greeting"])  # type: ignore[attr-defined]

    @hookimpl
    def ganforge_checkpoint_saved(step: int, path: Path) -> None:
        if raise_in == "ganforge_checkpoint_saved":
            raise RuntimeError("the observer broke")

    module.ganforge_register = ganforge_register  # type: ignore[attr-defined]
    module.ganforge_run_started = ganforge_run_started  # type: ignore[attr-defined]
    module.ganforge_checkpoint_saved = ganforge_checkpoint_saved  # type: ignore[attr-defined]
    return module


def test_a_recipe_without_the_table_gives_the_defaults_to_the_hook(
        tiny_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = settings_plugin()
    plugins = load_plugin(NAME, module)
    recipe = load_recipe(tiny_recipe, plugins.registry, ["run.steps=2"])
    assert recipe.plugins[NAME] == module.Settings()
    assert recipe.to_dict()["plugins"][NAME] == {"greeting": "hello"}
    # Defaults are not written to recipe.toml: it loads where the plugin is not installed.
    assert NAME not in tomllib.loads(recipe.to_toml()).get("plugins", {})
    train(recipe, plugins, tmp_path / "run", progress=False)
    assert module.SEEN == ["hello"]
    assert "disabled" not in capsys.readouterr().err
    assert {r.name: r.status for r in plugins.records}[NAME] == "loaded"


def test_a_table_still_sets_the_values(tiny_recipe: Path) -> None:
    plugins = load_plugin(NAME, settings_plugin())
    recipe = load_recipe(tiny_recipe, plugins.registry, [f"plugins.{NAME}.greeting=hi"])
    assert recipe.to_dict()["plugins"][NAME] == {"greeting": "hi"}
    assert tomllib.loads(recipe.to_toml())["plugins"][NAME] == {"greeting": "hi"}


def test_check_hooks_passes_a_good_plugin() -> None:
    module = settings_plugin()
    report = check_hooks(NAME, module, steps=2)
    assert report.passed == ["settings", "ganforge_run_started", "ganforge_checkpoint_saved"]
    assert module.SEEN == ["hello"]


def test_check_hooks_fails_naming_the_hook_and_the_plugin() -> None:
    with pytest.raises(AssertionError) as info:
        check_hooks(NAME, settings_plugin(raise_in="ganforge_checkpoint_saved"), steps=2)
    message = str(info.value)
    assert f"plugin '{NAME}' [ganforge_checkpoint_saved]: raised RuntimeError: the " \
           "observer broke" in message
    assert "[ganforge_run_started]" not in message


def test_check_hooks_needs_settings_with_defaults() -> None:
    module = settings_plugin()

    @attrs.frozen
    class Required:
        token: str = param(doc="no default")

    @hookimpl
    def ganforge_register(registry: Any) -> None:
        registry.register_settings(Required)

    module.ganforge_register = ganforge_register  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match=rf"plugin '{NAME}' \[settings\]: Required does "
                                             "not build from its defaults"):
        check_hooks(NAME, module, steps=2)
