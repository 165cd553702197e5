"""Sweep plans cannot reach outside their directory (issue 11, items 1 and 5).

A variant's name becomes a folder under the sweep's directory, which the runner writes into;
so names are plain, readable ids, generated ids are too, and every run directory is checked
to lie strictly inside the sweep's directory. One variant's overrides are applied like one
command line's: ``use`` changes first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from ganforge.errors import RecipeError
from ganforge.sweep.plan import MAX_VARIANT_NAME, plan_sweep, variant_id, variant_name_problem


def sweep_file(folder: Path, tiny_recipe: Path, text: str) -> Path:
    path = folder / "sweep.toml"
    path.write_text(f'extends = "{tiny_recipe.name}"\n{text}', encoding="utf-8")
    return path


def named_variants(folder: Path, tiny_recipe: Path, names: list[str]) -> Path:
    """A sweep whose named variants are ``names``, each changing nothing that matters."""
    variants = {name: {"run.steps": 2} for name in names}
    return sweep_file(folder, tiny_recipe, tomli_w.dumps({"sweep": {"variants": variants}}))


def problems_of(exc: RecipeError) -> dict[str, str]:
    assert all(len(f"{p}: {m}".splitlines()) == 1 for p, m in exc.problems), exc.problems
    return dict(exc.problems)


HOSTILE_NAMES = ["/abs/path", "../escape", "a/b", "..", ".", ".hidden", "-rf", "a b",
                 "x" * (MAX_VARIANT_NAME + 1), "", "a..b", "~", "a\nb", "é", "a\\b", "C:x"]


def test_unsafe_variant_names_are_refused_by_name(plugins, tiny_recipe: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = named_variants(tmp_path, tiny_recipe, HOSTILE_NAMES)
    with pytest.raises(RecipeError) as info:
        plan_sweep(path, plugins.registry, out=out)
    problems = problems_of(info.value)
    expected = {'$.sweep.variants.' + json.dumps(name) for name in HOSTILE_NAMES
                if name not in ("-rf", "x" * (MAX_VARIANT_NAME + 1))}
    expected |= {"$.sweep.variants.-rf", f"$.sweep.variants.{'x' * (MAX_VARIANT_NAME + 1)}"}
    assert set(problems) == expected  # every bad name at once, each with its own path
    assert all(m.startswith("not a safe variant name") for m in problems.values())
    assert str(info.value).splitlines()[0].startswith(f"{path}: $.sweep.variants.")
    assert not out.exists()


def test_the_issue_example_names_the_variant(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    path = named_variants(tmp_path, tiny_recipe, ["/abs"])
    with pytest.raises(RecipeError, match=r'\$\.sweep\.variants\."/abs": not a safe variant'):
        plan_sweep(path, plugins.registry, out=tmp_path / "out")


def test_readable_names_are_accepted(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    names = ["no_bn", "lr=1e-3,bs=64", "v1.2+x", "A-b", "x" * MAX_VARIANT_NAME]
    plan = plan_sweep(named_variants(tmp_path, tiny_recipe, names), plugins.registry,
                      out=tmp_path / "out", )
    assert plan.variants == ["base", *names]
    for run in plan.runs:
        assert run.run_dir.parent.parent == tmp_path / "out"


@pytest.mark.parametrize("overrides", [
    {"dataset.root": "../../etc"},
    {"dataset.root": "/abs/path"},
    {"dataset.root": ".."},
    {"run._x": "a b"},
    {"a.-": 1},
    {"dataset.root": "x" * 500},
    {"dataset.root": ["..", "/", "~"]},
    {"é.ü": "ß"},
])
def test_generated_ids_are_valid_names(overrides: dict) -> None:
    vid = variant_id(overrides)
    assert variant_name_problem(vid) is None, vid


def test_ids_that_were_already_safe_do_not_change() -> None:
    """Run directories of sweeps planned before names were checked keep their names."""
    assert variant_id({"dataset.root": "data/lsun"}) == "root=data-lsun"
    assert variant_id({"x.betas": [0.5, 0.999], "lr": 1e-3}) == "betas=0.5-0.999_lr=0.001"


def test_long_generated_ids_stay_distinct() -> None:
    a = variant_id({"dataset.root": "x" * 500 + "a"})
    b = variant_id({"dataset.root": "x" * 500 + "b"})
    assert a != b and len(a) == len(b) == MAX_VARIANT_NAME


def test_axis_values_cannot_leave_the_sweep_directory(plugins, tiny_recipe: Path,
                                                      tmp_path: Path) -> None:
    path = sweep_file(tmp_path, tiny_recipe, tomli_w.dumps(
        {"sweep": {"axes": {"run.out": ["../../x", "/abs", "..", "."]}}}))
    out = tmp_path / "out"
    plan = plan_sweep(path, plugins.registry, out=out)
    assert len(set(plan.variants)) == 4
    for run in plan.runs:
        assert run.run_dir.resolve().parent.parent == out.resolve()


def test_a_symlinked_variant_folder_outside_is_refused(plugins, tiny_recipe: Path,
                                                      tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "precious"
    out.mkdir()
    elsewhere.mkdir()
    (out / "evil").symlink_to(elsewhere, target_is_directory=True)
    path = named_variants(tmp_path, tiny_recipe, ["evil"])
    with pytest.raises(RecipeError) as info:
        plan_sweep(path, plugins.registry, out=out)
    problems = problems_of(info.value)
    assert list(problems) == ["$.sweep"]
    assert problems["$.sweep"].startswith("variant 'evil': run directory ")
    assert "is not inside the sweep directory" in problems["$.sweep"]


def test_names_differing_only_in_case_are_refused(plugins, tiny_recipe: Path,
                                                  tmp_path: Path) -> None:
    path = named_variants(tmp_path, tiny_recipe, ["NoBN", "nobn"])
    with pytest.raises(RecipeError, match="variants 'NoBN' and 'nobn' differ only in case"):
        plan_sweep(path, plugins.registry, out=tmp_path / "out")


def test_a_named_variant_called_base_is_refused(plugins, tiny_recipe: Path,
                                                tmp_path: Path) -> None:
    path = named_variants(tmp_path, tiny_recipe, ["base"])
    with pytest.raises(RecipeError, match="two variants have the id 'base'"):
        plan_sweep(path, plugins.registry, out=tmp_path / "out")


@pytest.mark.parametrize(("seeds", "message"), [
    ("[0, 1, 0]", "seeds listed more than once: [0]"),
    ("[-1]", "'seeds' must be >= 0: -1"),
    ("[9300000000000]", "'seeds' must be < 4294967296: 9300000000000"),
])
def test_bad_seeds_are_refused(plugins, tiny_recipe: Path, tmp_path: Path, seeds: str,
                               message: str) -> None:
    path = sweep_file(tmp_path, tiny_recipe,
                      f"[sweep]\nseeds = {seeds}\n[sweep.axes]\n'run.steps' = [2]\n")
    with pytest.raises(RecipeError) as info:
        plan_sweep(path, plugins.registry, out=tmp_path / "out")
    assert problems_of(info.value) == {"$.sweep.seeds": message}


# -- item 5 within a variant --------------------------------------------------------------

DIGITS_BASE = '[dataset]\nuse = "digits"\nimage_size = 32\nchannels = 3\n'


def test_a_variants_use_change_comes_before_its_values(plugins, tiny_recipe: Path,
                                                       tmp_path: Path) -> None:
    path = sweep_file(tmp_path, tiny_recipe, DIGITS_BASE + """
[sweep]
include_base = false
[sweep.variants.synth]
"dataset.count" = 12
"dataset.use" = "synthetic"
""")
    (run,) = plan_sweep(path, plugins.registry, out=tmp_path / "out").runs
    assert run.recipe["dataset"].short == "synthetic"
    assert run.recipe["dataset"].params.count == 12


def test_an_axis_use_change_keeps_the_named_variants_values(plugins, tiny_recipe: Path,
                                                            tmp_path: Path) -> None:
    path = sweep_file(tmp_path, tiny_recipe, DIGITS_BASE + """
[sweep]
include_base = false
[sweep.variants.small]
"dataset.count" = 12
[sweep.axes]
"dataset.use" = ["synthetic"]
""")
    (run,) = plan_sweep(path, plugins.registry, out=tmp_path / "out").runs
    assert run.variant == "small_use=synthetic"
    assert (run.recipe["dataset"].short, run.recipe["dataset"].params.count) == ("synthetic", 12)


def test_sweep_command_line_overrides_are_use_first(plugins, tiny_recipe: Path,
                                                    tmp_path: Path) -> None:
    path = sweep_file(tmp_path, tiny_recipe, DIGITS_BASE + "[sweep.axes]\n'run.steps' = [2]\n")
    plan = plan_sweep(path, plugins.registry, ["dataset.count=12", "dataset.use=synthetic"],
                      out=tmp_path / "out")
    assert plan.base["dataset"].params.count == 12
