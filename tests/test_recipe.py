"""Recipes: extends, merging, --set overrides, strict structuring, resolved output."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ganforge.errors import RecipeError
from ganforge.recipe import apply_overrides, build_recipe, load_raw, load_recipe, merge
from ganforge.recipe.loading import parse_override

BASE = """
[run]
steps = 10
[dataset]
use = "synthetic"
image_size = 32
[generator]
use = "dcgan"
width = 8
latent_dim = 16
[discriminator]
use = "dcgan"
width = 8
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_rules() -> None:
    base = {"a": {"use": "x", "p": 1, "q": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"p": 2}}) == {"a": {"use": "x", "p": 2, "q": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"q": [3]}})["a"]["q"] == [3]  # arrays replace
    assert merge(base, {"a": {"use": "y", "r": 5}})["a"] == {"use": "y", "r": 5}  # use changed
    assert merge(base, {"a": {"use": "x"}})["a"]["p"] == 1  # same use: still merges
    assert base == {"a": {"use": "x", "p": 1, "q": [1, 2]}, "b": 1}  # inputs untouched


def test_extends_chain_relative_paths(tmp_path: Path, plugins) -> None:
    write(tmp_path, "base/base.toml", BASE)
    write(tmp_path, "base/mid.toml", 'extends = "base.toml"\n[generator]\nwidth = 16\n')
    leaf = write(tmp_path, "studies/leaf.toml",
                 'extends = "../base/mid.toml"\n[run]\nsteps = 3\n')
    recipe = load_recipe(leaf, plugins.registry)
    assert recipe.run.steps == 3
    assert recipe["generator"].params.width == 16
    assert recipe["generator"].params.latent_dim == 16
    assert recipe["discriminator"].params.width == 8


def test_extends_list_applies_in_order(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "[run]\nsteps = 1\nseed = 1\n")
    write(tmp_path, "b.toml", "[run]\nsteps = 2\n")
    leaf = write(tmp_path, "c.toml", 'extends = ["a.toml", "b.toml"]\n')
    assert load_raw(leaf)["run"] == {"steps": 2, "seed": 1}


def test_extends_cycle_detected(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(RecipeError, match="cycle in extends"):
        load_raw(tmp_path / "a.toml")


def test_extends_missing_file(tmp_path: Path) -> None:
    leaf = write(tmp_path, "a.toml", 'extends = "nope.toml"\n')
    with pytest.raises(RecipeError, match=r"\$\.extends: extended recipe .*nope.toml.* not found"):
        load_raw(leaf)


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    leaf = write(tmp_path, "bad.toml", "[run\nsteps = 1\n")
    with pytest.raises(RecipeError, match=r"bad.toml: \$: TOML syntax error"):
        load_raw(leaf)


@pytest.mark.parametrize(("text", "expected"), [
    ("run.steps=5", (["run", "steps"], 5)),
    ("optimizer.generator.lr=1e-3", (["optimizer", "generator", "lr"], 1e-3)),
    ("optimizer.generator.betas=[0.9, 0.99]", (["optimizer", "generator", "betas"], [0.9, 0.99])),
    ("generator.batchnorm=false", (["generator", "batchnorm"], False)),
    ("dataset.root=data/lsun", (["dataset", "root"], "data/lsun")),  # not TOML: a string
    ('dataset.root="quoted"', (["dataset", "root"], "quoted")),
])
def test_parse_override(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1", ".a=1"])
def test_parse_override_rejects_malformed(text: str) -> None:
    with pytest.raises(RecipeError, match="expected key.path=value"):
        parse_override(text)


def test_overrides_apply_in_order_and_use_change_replaces() -> None:
    table = {"loss": {"use": "bce", "margin": 1}, "run": {"steps": 1}}
    out = apply_overrides(table, ["loss.use=hinge", "loss.margin=2", "run.seed=4"])
    assert out["loss"] == {"use": "hinge", "margin": 2}
    assert out["run"] == {"steps": 1, "seed": 4}
    with pytest.raises(RecipeError, match=r"\$\.run\.steps: is a value, not a table"):
        apply_overrides(table, ["run.steps.x=1"])


def test_every_problem_reported_at_once(tmp_path: Path, plugins) -> None:
    leaf = write(tmp_path, "r.toml", BASE.replace("width = 8\nlatent_dim", "widht = 8\nlatent_dim")
                 + "[runn]\n[loss]\nuse = \"bcee\"\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(leaf, plugins.registry, ["run.steps=-1", "discriminator.batchnorm=3"])
    problems = dict(info.value.problems)
    assert problems["$.runn"] == "unknown table, did you mean 'run'?"
    assert problems["$.generator.widht"] == "unknown key, did you mean 'width'?"
    assert "did you mean 'bce'" in problems["$.loss.use"]
    assert problems["$.run.steps"] == "'steps' must be > 0: -1"
    assert problems["$.discriminator.batchnorm"] == "expected true or false, got int 3"
    assert len(problems) == 5
    assert str(info.value).splitlines()[0].startswith(f"{leaf}: $.")


def test_types_are_strict(plugins) -> None:
    table = tomllib.loads(BASE)
    for override, message in [
        ("run.steps=2.5", "expected an integer, got float 2.5"),
        ("run.steps=true", "expected an integer, got bool True"),
        ('run.batch_size="8"', "expected an integer, got str '8'"),
        ("optimizer.generator.betas=0.5", "expected an array, got float 0.5"),
        ("optimizer.generator.betas=[0.5, 2.0]", "must both lie in [0, 1)"),
        ("generator.prior=gaussian", "'prior' must be in ['uniform', 'normal']"),
    ]:
        with pytest.raises(RecipeError) as info:
            build_recipe(apply_overrides(table, [override]), plugins.registry)
        assert message in str(info.value), override


def test_missing_tables_and_use(plugins) -> None:
    with pytest.raises(RecipeError) as info:
        build_recipe({"generator": {"width": 3}}, plugins.registry)
    problems = dict(info.value.problems)
    assert "missing table [dataset]" in problems["$.dataset"]
    assert "required" in problems["$.generator.use"]
    assert "$.discriminator" in problems


def test_defaults_fill_loss_and_optimizers(plugins) -> None:
    recipe = build_recipe(tomllib.loads(BASE), plugins.registry)
    assert recipe["loss"].name == "ganforge:bce" and recipe["loss"].short == "bce"
    assert recipe["optimizer.generator"].params.lr == 2e-4
    assert recipe["optimizer.discriminator"].params.betas == (0.5, 0.999)


def test_resolved_toml_round_trips(plugins) -> None:
    recipe = build_recipe(apply_overrides(tomllib.loads(BASE), ["generator.prior=normal"]),
                          plugins.registry)
    text = recipe.to_toml()
    data = tomllib.loads(text)
    assert data["generator"]["prior"] == "normal"
    assert data["generator"]["batchnorm"] is True  # defaults are written out
    assert data["optimizer"]["generator"]["betas"] == [0.5, 0.999]
    assert build_recipe(data, plugins.registry) == recipe


def test_shipped_recipes_resolve(plugins) -> None:
    root = Path(__file__).parent.parent / "recipes"
    quick = load_recipe(root / "quickstart.toml", plugins.registry)
    assert quick["dataset"].name == "ganforge:digits"
    lsun = load_raw(root / "dcgan_lsun.toml")
    assert lsun["run"]["batch_size"] == 128
    assert lsun["generator"]["width"] == 128 and lsun["generator"]["prior"] == "uniform"
    assert lsun["optimizer"]["generator"]["betas"][0] == 0.5
