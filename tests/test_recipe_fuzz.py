"""Recipes under fuzzing: random and mutated TOML, ``--set`` strings and ``extends`` chains.

Whatever goes in, the result is a valid :class:`Recipe` (whose resolved TOML round-trips)
or a :class:`RecipeError` whose every problem is one line with a ``$.path`` (``--set`` for
a malformed override); never any other exception.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import math
import os
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from ganforge import load_plugins
from ganforge.errors import RecipeError
from ganforge.recipe import Recipe, build_recipe, load_recipe
from ganforge.recipe.loading import parse_override
from ganforge.registry import Registry

RECIPES = Path(__file__).parent.parent / "recipes"
QUICKSTART = RECIPES / "quickstart.toml"
SHIPPED = {name: tomllib.loads((RECIPES / name).read_text(encoding="utf-8"))
           for name in ("quickstart.toml", "dcgan_lsun.toml")}

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@functools.cache
def registry() -> Registry:
    """Built-in components, loaded once (after conftest has cleaned the plugin switches)."""
    return load_plugins().registry


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- the contract ------------------------------------------------------------------------


def check_error(exc: RecipeError) -> None:
    """Every problem is one line: a ``$`` path (or ``--set``) and a non-empty message."""
    assert exc.problems, "a RecipeError without problems"
    for path, message in exc.problems:
        assert isinstance(path, str) and isinstance(message, str)
        assert path == "--set" or path.startswith("$"), path
        assert len(path.splitlines()) == 1, repr(path)
        assert message.strip(), f"empty message at {path}"
        assert len(message.splitlines()) == 1, repr(message)
    lines = str(exc).splitlines()
    assert len(lines) == len(exc.problems), str(exc)
    assert list(exc.lines()) == lines


def check_round_trip(recipe: Recipe) -> None:
    """The resolved TOML builds the same recipe again."""
    again = build_recipe(tomllib.loads(recipe.to_toml()), registry(), source=recipe.source)
    assert again == recipe


def outcome(load: Callable[[], Recipe]) -> Recipe | None:
    """Run ``load``: a Recipe (checked to round-trip) or a well-formed RecipeError (None)."""
    try:
        recipe = load()
    except RecipeError as exc:
        check_error(exc)
        note_event("RecipeError")
        return None
    assert isinstance(recipe, Recipe)
    check_round_trip(recipe)
    note_event("valid recipe")
    return recipe


def note_event(what: str) -> None:
    """Count outcomes in ``--hypothesis-show-statistics`` (a plain test has no events)."""
    if currently_in_test_context():
        event(what)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- strategies --------------------------------------------------------------------------

COMPONENT_NAMES = sorted({e.name for kind in ("dataset", "generator", "discriminator", "loss",
                                              "optimizer", "metric")
                          for e in load_plugins().registry.list(kind)})
KNOWN_KEYS = ["run", "eval", "metrics", "dataset", "generator", "discriminator", "loss",
              "optimizer", "use", "steps", "batch_size", "seed", "device", "width",
              "latent_dim", "image_size", "channels", "prior", "batchnorm", "lr", "betas",
              "eps", "margin", "root", "categories", "limit", "n_fake", "every", "best",
              "leaky_slope", "pin_memory", "out", "extends"]
ODD_TEXT = ["", " ", "a.b", "a\nb", "\r", "\u2028", "\x85", "\x1c", "é", "\t", '"', "'",
            "$", "=", "[x]", "\x00", "\x7f"]

keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.sampled_from(ODD_TEXT), st.text(max_size=8))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 4, 64, 1025, 2**63, -(2**63) - 1, 10**400, -(10**400)]),
    st.floats(),  # nan, inf and -0.0 included
    st.sampled_from([0.0, 0.5, 1.0, -0.5, 1e-300, 1e308, math.inf, -math.inf, math.nan]),
)
scalars = st.one_of(
    numbers,
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(COMPONENT_NAMES + ODD_TEXT + ["auto", "cpu", "cuda:1", "uniform"]),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def paths_of(table: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of ``table`` (tables and values), root first."""
    found = []
    for key, value in table.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found.extend(paths_of(value, (*prefix, key)))
    return found


def tables_of(table: dict, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    for key, value in table.items():
        if isinstance(value, dict):
            found.extend(tables_of(value, (*prefix, key)))
    return found


def node_at(table: dict, path: tuple) -> dict:
    for key in path:
        table = table[key]
    return table


def typos(word: str) -> st.SearchStrategy[str]:
    """Near misses of ``word``: a letter dropped, doubled or swapped, case changed."""
    options = [word.upper(), word + "s", word + " ", "_" + word]
    for i in range(len(word)):
        options.append(word[:i] + word[i + 1:])
        options.append(word[:i] + word[i] + word[i:])
        if i + 1 < len(word):
            options.append(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    return st.sampled_from(options) | st.text(min_size=1, max_size=6)


eval_tables = st.fixed_dictionaries(
    {"metrics": st.dictionaries(keys, st.fixed_dictionaries(
        {"use": st.sampled_from(["fid", "kid", "inception_score", "fdi"])},
        optional={"n_fake": numbers, "batch_size": numbers, "extractor": scalars}),
        max_size=2)},
    optional={"every": numbers, "best": keys},
)


@st.composite
def mutated_recipes(draw: st.DrawFn) -> dict:
    """A shipped recipe after a few random deletions, replacements, renames and additions."""
    table = copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "replace", "rename", "add", "use", "eval"]))
        paths = paths_of(table)
        if op == "delete" and paths:
            *parent, key = draw(st.sampled_from(paths))
            del node_at(table, tuple(parent))[key]
        elif op == "replace" and paths:
            *parent, key = draw(st.sampled_from(paths))
            node_at(table, tuple(parent))[key] = draw(toml_values)
        elif op == "rename" and paths:
            *parent, key = draw(st.sampled_from(paths))
            node = node_at(table, tuple(parent))
            node[draw(typos(key))] = node.pop(key)
        elif op == "add":
            node = node_at(table, draw(st.sampled_from(tables_of(table))))
            node[draw(keys.filter(lambda k: k != "extends"))] = draw(
                toml_values | st.dictionaries(keys, toml_values, max_size=3))
        elif op == "use":
            tables = [p for p in tables_of(table) if p]
            if tables:
                node_at(table, draw(st.sampled_from(tables)))["use"] = draw(
                    st.sampled_from(COMPONENT_NAMES) | typos("dcgan") | scalars)
        elif op == "eval":
            table["eval"] = draw(eval_tables)
    return table


#: Values that break parsers past their syntax checks: nesting, and digits past int limits.
#: (Hypothesis raises the recursion limit from 1000 to 2048 while a test runs; deep enough
#: nesting fails either way, shallower nesting gets past tomllib to what follows.)
HOSTILE = [*("[" * n + "]" * n for n in (300, 900)), "[" * 3000,
           *("{a=" * n + "1" + "}" * n for n in (200, 600)), "{a=" * 1500 + "1",
           "9" * 5000, "9" * 400, "-" + "9" * 400, "1e999"]
FRAGMENTS = ["[", "]", "[[", "]]", "=", " = ", '"', "'", '"""', "'''", "\n", " ", ".", ",",
             "{", "}", "#", "\\", "\\u", "-", "+", "_", "run", "steps", "generator", "use",
             '"dcgan"', "width", "optimizer", "betas", "eval", "metrics", "fid", "extends",
             "1", "-1", "0x10", "0o7", "0b1", "1e400", "1.5", "nan", "-inf", "true", "false",
             "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "9" * 30, "\x00", "\ufeff",
             "\r\n", *(f"\nv = {value}\n" for value in HOSTILE)]
toml_like_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map(
    "".join)
QUICK_TEXT = QUICKSTART.read_text(encoding="utf-8")
LINES = ["[run]", "[eval]", "[eval.metrics.fid]", "[eval.metrics.\"a.b\"]", 'use = "fid"',
         "every = 10", "n_fake = 0", "[optimizer.generator]", "betas = [0.5, 1e400]",
         "lr = nan", "lr = inf", "steps = 1", "width = -3", 'prior = "normal"', "[loss]",
         'use = "hinge"', "margin = 0.0", '"a\nb" = 1', "seed = 1979-05-27", "[[run]]"]


@st.composite
def quickstart_line_edits(draw: st.DrawFn) -> str:
    """The quickstart with some lines dropped and a few plausible or broken ones added."""
    lines = [line for line in QUICK_TEXT.splitlines() if draw(st.integers(0, 19))]
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(lines)))
        lines.insert(index, draw(st.sampled_from(LINES) | st.sampled_from(LINES) | toml_like_text))
    return "\n".join(lines)


# -- 1. random TOML text -----------------------------------------------------------------


@FUZZ
@given(text=st.one_of(st.text(max_size=200), toml_like_text,
                      toml_like_text.map(lambda t: QUICK_TEXT + "\n" + t),
                      quickstart_line_edits(), st.binary(max_size=60),
                      st.sampled_from(HOSTILE).map(lambda v: f"{QUICK_TEXT}\nvalue = {v}\n")))
@example(text="[run]\nsteps = " + "[" * 3000)  # RecursionError inside tomllib
@example(text="[run]\nsteps = " + "{a=" * 1500 + "1" + "}" * 1500)
@example(text="[run]\nsteps = " + "9" * 5000)  # ValueError: int beyond 4300 digits
@example(text='"a\\nb" = 1\n')  # a key with a line break: the path must stay one line
@example(text=b"\xff\xfe[run]")  # not UTF-8
def test_random_toml_text(workdir: Path, text: str | bytes) -> None:
    path = write(workdir / "random.toml", text)
    outcome(lambda: load_recipe(path, registry()))


# -- 2. mutated shipped recipes ----------------------------------------------------------


@FUZZ
@given(table=mutated_recipes())
@example(table={**SHIPPED["quickstart.toml"],
                "optimizer": {"generator": {"use": "adam", "lr": 10**400},  # OverflowError
                              "discriminator": {"use": "adam"}}})
@example(table={**SHIPPED["quickstart.toml"], "eval": {"metrics": {"a.b": {"use": "fid"}}}})
@example(table={**SHIPPED["quickstart.toml"], "eval": {"metrics": {"x\u2028y": {}}},
                "run": {"a\nb": 1}, "\x85": {}})
def test_mutated_recipes(workdir: Path, table: dict) -> None:
    direct = outcome(lambda: build_recipe(table, registry()))
    path = write(workdir / "mutated.toml", tomli_w.dumps(table))
    loaded = outcome(lambda: load_recipe(path, registry()))
    if "extends" not in table:  # the file says the same as the table
        assert (direct is None) == (loaded is None)
        if direct is not None:
            assert loaded == build_recipe(table, registry(), source=str(path))


def test_shipped_recipes_are_valid() -> None:
    for table in SHIPPED.values():
        assert outcome(lambda t=table: build_recipe(t, registry())) is not None


# -- 3. --set overrides ------------------------------------------------------------------

SET_KEYS = ["run.steps", "run.batch_size", "run.device", "run.seed", "run.pin_memory",
            "run.out", "generator.width", "generator.use", "generator.prior",
            "discriminator.leaky_slope", "dataset.use", "dataset.channels", "loss.use",
            "loss.margin", "optimizer.generator.betas", "optimizer.generator.lr",
            "optimizer.discriminator.use", "eval.every", "eval.best", "eval.metrics.fid.use",
            "eval.metrics.fid.n_fake", "run", "run.steps.x", "extends", "generator..width"]


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes would split astral characters)."""
    escaped = "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or c == "\x7f"
                      else c for c in text)
    return f'"{escaped}"'


def literal(value: Any) -> str:
    """``value`` written as a TOML literal (inline tables for tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {literal(v)}" for k, v in value.items()) + "}"
    return value.isoformat()


set_keys = st.one_of(
    st.sampled_from(SET_KEYS),
    st.lists(keys, min_size=1, max_size=3).map(".".join),
    st.text(max_size=10),
)
set_values = st.one_of(toml_values.map(literal), st.text(max_size=12),
                       st.sampled_from(FRAGMENTS), st.sampled_from(HOSTILE), toml_like_text)
PLAUSIBLE = ["1", "8", "0", "-1", "0.5", "1e-3", "[0.5, 0.9]", "[]", "true", "false", '"cpu"',
             "cuda:1", "normal", "hinge", "dcgan", "adam", "fid", "synthetic", " 3 ", "nan"]
WELL_TYPED = st.one_of(
    st.integers(1, 10**6).map("run.steps={}".format),
    st.integers(0, 2**32 - 1).map("run.seed={}".format),  # the range run.seed accepts
    st.sampled_from(["auto", "cpu", '"cuda:3"', "mps"]).map("run.device={}".format),
    st.integers(1, 512).map("generator.width={}".format),
    st.sampled_from(["normal", "uniform"]).map("generator.prior={}".format),
    st.floats(0, 1, exclude_max=True).map("optimizer.generator.betas=[0.5, {!r}]".format),
    st.floats(1e-9, 1e9).map("optimizer.discriminator.lr={!r}".format),
    st.sampled_from(["loss.use=hinge", "loss.use=bce", "dataset.use=synthetic",
                     "eval.metrics.fid.use=fid", "generator.batchnorm=false"]),
)
overrides = st.one_of(
    WELL_TYPED,
    WELL_TYPED,
    st.tuples(st.sampled_from(SET_KEYS), st.sampled_from(PLAUSIBLE)).map("=".join),
    st.tuples(set_keys, set_values).map("=".join),
    st.text(max_size=20),
)


@FUZZ
@given(sets=st.lists(overrides, max_size=4))
@example(sets=["run.steps=" + "[" * 3000])  # RecursionError inside tomllib
@example(sets=["run.steps=" + "9" * 5000])  # ValueError: int beyond 4300 digits
@example(sets=["run.a\nb.c=1"])  # a key with a line break in a "not a table" path
@example(sets=["run.steps.x=1", "novalue", "=3", "a..b=1"])
@example(sets=["optimizer.generator.lr=" + "9" * 400])  # OverflowError in float()
def test_set_overrides(sets: list[str]) -> None:
    outcome(lambda: load_recipe(QUICKSTART, registry(), overrides=sets))


@FUZZ
@given(value=toml_values)
def test_set_literal_parses_back(value: Any) -> None:
    """A value written as a TOML literal comes back from ``--set`` as that value."""
    parts, parsed = parse_override(f"run.x={literal(value)}")
    assert parts == ["run", "x"]
    assert json.dumps(parsed, default=str) == json.dumps(value, default=str)


# -- 4. extends chains -------------------------------------------------------------------

NAMES = ["a.toml", "b.toml", "sub/c.toml", "sub/deeper/d.toml", "e f.toml", "ü.toml"]


@st.composite
def extends_values(draw: st.DrawFn, here: str) -> Any:
    """What one file's ``extends`` says: sibling files (relative to ``here``), itself,
    missing files, odd strings, or values that are not paths at all."""
    up = "../" * here.count("/")
    one = st.one_of(
        st.sampled_from(NAMES).map(lambda n: up + n),
        st.sampled_from(["missing.toml", "", ".", "..", "sub", "~nobody-here/x.toml",
                         "a" * 5000, "a\x00b", "/dev/null", "a.toml/"]),
        st.text(max_size=10),
    )
    return draw(st.one_of(one, st.lists(one, max_size=3), toml_values))


@st.composite
def extends_trees(draw: st.DrawFn) -> dict[str, str]:
    """File name -> text: a few recipes that may extend each other, in cycles or not."""
    files: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True)):
        body = draw(st.sampled_from([QUICK_TEXT, "", "[run]\nsteps = 3\n",
                                     '[generator]\nuse = "dcgan"\nwidth = 8\n', "[run\n"]))
        if draw(st.booleans()):
            extends = tomli_w.dumps({"extends": draw(extends_values(name))})
            body = extends + body
        files[name] = body
    return files


@FUZZ
@given(files=extends_trees())
@example(files={"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = ["a.toml"]\n'})
@example(files={"a.toml": 'extends = "' + "x" * 5000 + '"\n'})  # OSError: name too long
@example(files={"a.toml": "extends = 3\n"})
@example(files={"a.toml": 'extends = "sub"\n', "sub/c.toml": ""})
def test_extends_chains(workdir: Path, files: dict[str, str]) -> None:
    folder = Path(tempfile.mkdtemp(dir=workdir))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write(folder / name, text)
    outcome(lambda: load_recipe(folder / next(iter(files)), registry()))


# -- regressions found by the fuzzing above, spelled out ---------------------------------


def problems_of(load: Callable[[], Any]) -> dict[str, str]:
    with pytest.raises(RecipeError) as info:
        load()
    check_error(info.value)
    return dict(info.value.problems)


def test_integer_too_large_for_a_float() -> None:
    problems = problems_of(lambda: load_recipe(QUICKSTART, registry(), [
        f"optimizer.generator.lr={'9' * 400}", f"optimizer.discriminator.betas=[{'9' * 400}, 0]"]))
    message = "expected a number, got an integer too large for a float"
    assert problems == {"$.optimizer.generator.lr": message,
                        "$.optimizer.discriminator.betas[0]": message}


def test_hostile_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    deep = write(tmp_path / "deep.toml", "[run]\nsteps = " + "[" * 5000)
    assert problems_of(lambda: load_recipe(deep, registry())) == {
        "$": "cannot read TOML: arrays or tables nested too deeply"}
    big = write(tmp_path / "big.toml", "[run]\nsteps = " + "9" * 5000)
    assert problems_of(lambda: load_recipe(big, registry()))["$"].startswith(
        "cannot read TOML: Exceeds the limit (4300 digits) for integer string conversion")
    # The same in --set: not a TOML value, so it stays a string.
    problems = problems_of(lambda: load_recipe(QUICKSTART, registry(), ["run.steps=" + "[" * 5000]))
    assert problems["$.run.steps"].startswith("expected an integer, got str '[[[")


def test_odd_keys_are_quoted_in_paths() -> None:
    table = {**SHIPPED["quickstart.toml"], "run": {"a\nb": 1, "a.b": 2, "": 3},
             "optimizer": {**SHIPPED["quickstart.toml"]["optimizer"], "x y": {}},
             "eval": {"metrics": {"m\u2028": {"use": "nope"}}}, "\x85": {}}
    problems = problems_of(lambda: build_recipe(table, registry()))
    assert set(problems) == {'$.run."a\\nb"', '$.run."a.b"', '$.run.""', '$.optimizer."x y"',
                             '$.eval.metrics."m\\u2028".use', '$."\\u0085"'}
    problems = problems_of(lambda: load_recipe(QUICKSTART, registry(), ["run.steps.a\nb.c=1"]))
    assert list(problems) == ["$.run.steps"]
    problems = problems_of(lambda: load_recipe(QUICKSTART, registry(), ["run.a b.c=1",
                                                                         "run.a b.c.d=1"]))
    assert list(problems) == ['$.run."a b".c']


def test_metric_label_with_a_dot_round_trips() -> None:
    table = {**SHIPPED["quickstart.toml"], "eval": {"metrics": {"fid.10k": {"use": "fid"}}}}
    recipe = build_recipe(table, registry())
    assert list(recipe.metrics) == ["fid.10k"]
    check_round_trip(recipe)
    assert tomllib.loads(recipe.to_toml())["eval"]["metrics"]["fid.10k"]["use"] == "ganforge:fid"


def test_extends_odd_paths_are_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for extends in ["x" * 5000, "~nobody-here/x.toml", "a\x00b"]:
        write(tmp_path / "leaf.toml", tomli_w.dumps({"extends": extends}))
        # A relative recipe path makes the parent '.', so '~nobody-here' reaches expanduser.
        problems = problems_of(lambda: load_recipe("leaf.toml", registry()))
        assert list(problems) == ["$.extends"]
        assert problems["$.extends"].endswith("not found")


@pytest.mark.skipif(os.name == "nt", reason="no line breaks in Windows file names")
def test_file_names_with_line_breaks_stay_on_one_line(tmp_path: Path) -> None:
    write(tmp_path / "bad\nname.toml", "[run\n")
    write(tmp_path / "cycle\u2028.toml", 'extends = "leaf.toml"\n')
    leaf = write(tmp_path / "leaf.toml", 'extends = ["bad\\nname.toml"]\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(leaf, registry())
    check_error(info.value)
    assert info.value.source == repr(str(tmp_path / "bad\nname.toml"))
    write(leaf, 'extends = "cycle\\u2028.toml"\n')
    with pytest.raises(RecipeError, match="cycle in extends") as info:
        load_recipe(leaf, registry())
    check_error(info.value)
