"""``extends = "ganforge:quickstart"``: recipes shipped in a package, named instead of found
by a path relative to the recipe (ganforge's own, a plugin's, any importable package's)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.errors import RecipeError
from ganforge.recipe import load_raw, loading

ROOT = Path(__file__).parent.parent
QUICKSTART = ROOT / "recipes" / "quickstart.toml"
EXAMPLE = ROOT / "docs" / "examples" / "ganforge-lsgan"

PLUGIN = "fakerecipes"  # the entry-point name
PACKAGE = "fake_recipes_pkg"  # the package its entry point's module lives in


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An installed plugin distribution whose package ships ``recipes/``: entry point
    ``fakerecipes = fake_recipes_pkg.plugin``. Importing the package fails, so a test that
    passes shows the recipes were found without importing the plugin. Returns the package's
    ``recipes/`` folder."""
    site = tmp_path / "site"
    package = site / PACKAGE
    write(package / "__init__.py", "raise RuntimeError('recipes by name must not import me')\n")
    write(package / "plugin.py", "")
    info = site / "ganforge_fakerecipes-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: ganforge-fakerecipes\nVersion: 1.0\n")
    write(info / "entry_points.txt", f"[ganforge]\n{PLUGIN} = {PACKAGE}.plugin\n")
    recipes = package / "recipes"
    write(recipes / "lsq.toml", """\
        # The quickstart, shorter.
        extends = "ganforge:quickstart"
        [run]
        steps = 7
        """)
    write(recipes / "variants" / "small.toml", f"""\
        extends = "{PLUGIN}:lsq"
        [generator]
        width = 8
        """)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield recipes
    assert PACKAGE not in sys.modules
    importlib.invalidate_caches()


def one_line(error: RecipeError) -> str:
    text = str(error)
    assert len(text.splitlines()) == 1, text
    return text


# -- ganforge's own recipes ---------------------------------------------------------------


def test_name_and_path_resolve_to_the_same_recipe(tmp_path: Path) -> None:
    by_name = write(tmp_path / "a" / "by_name.toml", """\
        extends = "ganforge:quickstart"
        [run]
        steps = 3
        """)
    by_path = write(tmp_path / "b" / "by_path.toml", f"""\
        extends = {str(QUICKSTART)!r}
        [run]
        steps = 3
        """)
    assert load_raw(by_name) == load_raw(by_path)
    assert load_raw(by_name)["run"]["steps"] == 3
    assert load_raw("ganforge:quickstart") == load_raw(QUICKSTART)
    assert load_raw(Path("ganforge:quickstart")) == load_raw(QUICKSTART)


def test_sub_folders_are_part_of_the_name() -> None:
    common = ROOT / "recipes" / "ablations" / "common.toml"
    assert load_raw("ganforge:ablations/common") == load_raw(common)


def test_recipes_live_in_the_package_and_the_root_folder_links_there() -> None:
    assert (ROOT / "recipes").resolve() == loading.GANFORGE_RECIPES
    assert QUICKSTART.samefile(loading.GANFORGE_RECIPES / "quickstart.toml")
    # Every shipped recipe is package data (pyproject.toml: recipes/*.toml, recipes/*/*.toml).
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["ganforge"]
    for path in loading.GANFORGE_RECIPES.rglob("*.toml"):
        relative = path.relative_to(loading.GANFORGE_RECIPES.parent)
        assert any(relative.match(pattern) for pattern in patterns), relative


def test_a_list_may_mix_names_and_paths(tmp_path: Path) -> None:
    write(tmp_path / "local.toml", "[run]\nsteps = 11\nseed = 4\n")
    leaf = write(tmp_path / "leaf.toml", """\
        extends = ["ganforge:quickstart", "local.toml"]
        [run]
        seed = 5
        """)
    run = load_raw(leaf)["run"]
    assert (run["steps"], run["seed"], run["batch_size"]) == (11, 5, 64)


def test_a_file_reached_by_name_and_by_path_is_read_once(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    real = loading.read_toml

    def counting(path: Path) -> dict:
        reads.append(path.resolve())
        return real(path)

    monkeypatch.setattr(loading, "read_toml", counting)
    leaf = write(tmp_path / "leaf.toml",
                 f'extends = ["ganforge:quickstart", {str(QUICKSTART)!r}]\n')
    load_raw(leaf)
    assert reads.count(QUICKSTART.resolve()) == 1


def test_an_existing_file_of_that_name_wins(tmp_path: Path) -> None:
    write(tmp_path / "ganforge:quickstart", "[run]\nsteps = 1\n")
    leaf = write(tmp_path / "leaf.toml", 'extends = "ganforge:quickstart"\n')
    assert load_raw(leaf) == {"run": {"steps": 1}}


def test_a_name_with_toml_is_a_path_with_a_hint(tmp_path: Path) -> None:
    leaf = write(tmp_path / "leaf.toml", 'extends = "ganforge:quickstart.toml"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(leaf)
    assert one_line(info.value).endswith(
        "not found (a recipe by name has no .toml: 'ganforge:quickstart')")


# -- errors -------------------------------------------------------------------------------


def test_unknown_recipe_lists_what_the_package_ships(tmp_path: Path) -> None:
    leaf = write(tmp_path / "leaf.toml", 'extends = "ganforge:quickstrat"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(leaf)
    text = one_line(info.value)
    assert text.startswith(f"{leaf}: $.extends: extended recipe 'ganforge:quickstrat': "
                           "ganforge ships no recipe 'quickstrat', did you mean 'quickstart'? "
                           "(its recipes: ablations/batchnorm, ")
    assert "quickstart_conditional" in text and text.endswith(")")


def test_unknown_package_names_the_plugins(tmp_path: Path, plugin_site: Path) -> None:
    leaf = write(tmp_path / "leaf.toml", 'extends = "ganforg:quickstart"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(leaf)
    text = one_line(info.value)
    assert ("$.extends: extended recipe 'ganforg:quickstart': no plugin or package 'ganforg' "
            "ships recipes, did you mean 'ganforge'? (installed plugins: ") in text
    assert PLUGIN in text.rpartition("installed plugins: ")[2]
    with pytest.raises(RecipeError) as info:
        load_raw("no_such_package_here:x")
    assert one_line(info.value).startswith(
        "no_such_package_here:x: $: no plugin or package 'no_such_package_here' ships recipes")


def test_a_plugin_that_is_one_module_ships_no_recipes(tmp_path: Path, fake_dist) -> None:
    fake_dist("ganforge-single", "single_plugin", "")
    leaf = write(tmp_path / "leaf.toml", 'extends = "single:x"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(leaf)
    assert one_line(info.value).endswith(
        "extended recipe 'single:x': plugin 'single' ships no recipes: its module "
        "'single_plugin' is not in a package (recipes live in <package>/recipes/)")


def test_a_module_or_a_package_without_recipes(tmp_path: Path) -> None:
    for value, message in [("textwrap:x", "package 'textwrap' is a module, not a package"),
                           ("json:x", "package 'json' ships no recipes (no recipes/ folder")]:
        with pytest.raises(RecipeError, match=r"^" + value) as info:
            load_raw(value)
        assert message in one_line(info.value)


# -- a plugin's recipes -------------------------------------------------------------------


def test_plugin_recipe_extends_ganforge_by_name(tmp_path: Path, plugin_site: Path) -> None:
    quickstart = load_raw(QUICKSTART)
    lsq = load_raw(f"{PLUGIN}:lsq")
    assert lsq == {**quickstart, "run": {**quickstart["run"], "steps": 7}}
    # The entry-point name and the package name are two names of one recipe.
    assert load_raw(f"{PACKAGE}:lsq") == lsq
    small = load_raw(f"{PLUGIN}:variants/small")
    assert small["generator"]["width"] == 8 and small["run"]["steps"] == 7
    leaf = write(tmp_path / "mine.toml", f'extends = "{PLUGIN}:variants/small"\n')
    assert load_raw(leaf) == small


def test_plugin_unknown_recipe_suggests(plugin_site: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load_raw(f"{PLUGIN}:lqs")
    assert one_line(info.value) == (
        f"{PLUGIN}:lqs: $: plugin '{PLUGIN}' ships no recipe 'lqs', did you mean 'lsq'? "
        "(its recipes: lsq, variants/small)")


def test_cycles_through_names_are_refused(plugin_site: Path) -> None:
    write(plugin_site / "a.toml", f'extends = "{PLUGIN}:b"\n')
    write(plugin_site / "b.toml", f'extends = "{PACKAGE}:a"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(f"{PLUGIN}:a")
    assert one_line(info.value).endswith(
        f"$.extends: cycle in extends: {PLUGIN}:a -> {PLUGIN}:b -> {PACKAGE}:a")
    # A name and the file it stands for are one node: a path back to it closes the cycle.
    write(plugin_site / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(RecipeError, match="cycle in extends") as info:
        load_raw(f"{PLUGIN}:a")
    one_line(info.value)


def test_chains_of_names_are_capped(plugin_site: Path) -> None:
    for i in range(100):
        write(plugin_site / f"f{i}.toml", f'extends = "{PLUGIN}:f{i + 1}"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(f"{PLUGIN}:f0")
    text = one_line(info.value)
    assert (f"extends chain deeper than {loading.MAX_EXTENDS_DEPTH} files: {PLUGIN}:f0 -> ... "
            f"-> {PLUGIN}:f{loading.MAX_EXTENDS_DEPTH - 1} -> "
            f"{PLUGIN}:f{loading.MAX_EXTENDS_DEPTH}") in text


def test_recipes_command_lists_every_package(plugin_site: Path) -> None:
    from ganforge.cli import app

    result = CliRunner().invoke(app, ["recipes"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("ganforge:quickstart", "ganforge:ablations/common", f"{PLUGIN}:lsq",
                 f"{PLUGIN}:variants/small"):
        assert name in result.output
    assert "The quickstart, shorter." in result.output


# -- the example plugin of docs/writing-plugins.md ----------------------------------------


def test_example_plugin_recipe_extends_the_quickstart_by_name() -> None:
    text = (EXAMPLE / "lsgan_digits.toml").read_text()
    assert tomllib.loads(text)["extends"] == "ganforge:quickstart"
    table = load_raw(EXAMPLE / "lsgan_digits.toml")
    assert table["dataset"] == load_raw(QUICKSTART)["dataset"]
    assert table["loss"]["use"] == "least_squares"
