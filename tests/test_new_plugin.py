"""``ganforge new plugin``: the distribution it writes passes its own tests as generated,
builds into a wheel that carries the entry point, and bad names and folders are refused
in one line."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.cli.plugin_template import KINDS

#: The kinds the template had first; the later ones (regularizer, augment, extractor) are
#: generated and checked in tests/test_new_plugin_kinds.py.
FIRST_KINDS = ("generator", "discriminator", "loss", "optimizer", "scheduler", "dataset")
ALL_KINDS = ",".join(FIRST_KINDS)


def new_plugin(*args: str):
    return CliRunner().invoke(app, ["new", "plugin", *args])


def _forget(package: str) -> None:
    """Drop a generated package from sys.modules (it lives in a temporary folder)."""
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[module]
    importlib.invalidate_caches()


def test_generated_plugin_passes_its_own_tests(tmp_path: Path) -> None:
    out = tmp_path / "ganforge-kitgen"
    result = new_plugin("kitgen", "--out", str(out), "--kinds", ALL_KINDS)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}/ (13 files): plugin 'kitgen' with generator "
                                    "kitgen:mlp, discriminator kitgen:mlp, loss "
                                    "kitgen:least_squares, optimizer kitgen:sgd, scheduler "
                                    "kitgen:step_decay, dataset kitgen:stripes")
    project = tomllib.loads((out / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ganforge-kitgen" and project["dependencies"] == ["ganforge"]
    assert project["entry-points"]["ganforge"] == {"kitgen": "ganforge_kitgen.plugin"}
    for kind in KINDS:
        assert (out / "ganforge_kitgen" / f"{kind}.py").is_file() == (kind in FIRST_KINDS)
    # Importable from the folder alone: nothing is installed into the shared environment.
    env = {**os.environ, "PYTHONPATH": str(out), "GANFORGE_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "10 passed" in run.stdout  # 6 components, their list, settings, hooks, the recipe


def test_default_kinds_and_a_recipe_that_borrows_networks(tmp_path: Path,
                                                          monkeypatch) -> None:
    from ganforge.recipe import load_raw
    from ganforge.recipe.model import build_recipe
    from ganforge.testing import plugin_registry

    out = tmp_path / "loss-only"
    assert new_plugin("lossgen", "--out", str(out), "--kinds", "loss").exit_code == 0
    assert sorted(p.name for p in (out / "ganforge_lossgen").glob("*.py")) == [
        "__init__.py", "loss.py", "plugin.py"]
    recipe = out / "ganforge_lossgen" / "recipes" / "lossgen_quick.toml"
    text = recipe.read_text()
    assert 'use = "lossgen:least_squares"' in text and 'use = "dcgan:dcgan"' in text
    assert "ganforge-dcgan" in (out / "README.md").read_text()

    default = tmp_path / "default"
    assert new_plugin("defaultgen", "--out", str(default)).exit_code == 0
    assert sorted(p.name for p in (default / "ganforge_defaultgen").glob("*.py")) == [
        "__init__.py", "discriminator.py", "generator.py", "loss.py", "plugin.py"]

    monkeypatch.syspath_prepend(str(out))
    try:
        registry = plugin_registry("lossgen", "ganforge_lossgen.plugin")
        built = build_recipe(load_raw(recipe), registry)
        assert built["loss"].name == "lossgen:least_squares"
        assert built["dataset"].name in ("digits", "ganforge:digits")
    finally:
        _forget("ganforge_lossgen")


@pytest.mark.parametrize(("args", "message"), [
    (["Foo"], "plugin name 'Foo' must be a lower-case Python identifier"),
    (["my-gan"], "(try 'my_gan')"),
    (["1gan"], "must be a lower-case Python identifier"),
    (["class"], "plugin name 'class' is reserved"),
    (["ganforge"], "plugin name 'ganforge' is reserved"),
    (["ok", "--kinds", "loss,gan"], "--kinds: unknown kind 'gan'; choose from generator"),
    (["ok", "--kinds", ","], "--kinds: name at least one of generator"),
])
def test_bad_names_and_kinds_are_refused_in_one_line(tmp_path: Path, args, message) -> None:
    result = new_plugin(*args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    result = new_plugin("taken", "--out", str(taken))
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {taken} already exists and is not empty; choose "
                                     "another --out (nothing was written)")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert new_plugin("taken", "--out", str(a_file)).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert new_plugin("taken", "--out", str(empty)).exit_code == 0  # an empty folder is fine


def test_wheel_builds_offline_and_carries_the_entry_point(tmp_path: Path,
                                                          monkeypatch) -> None:
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel")  # older setuptools builds wheels with the wheel package
    out = tmp_path / "src"
    assert new_plugin("wheelgen", "--out", str(out), "--kinds", "loss,dataset").exit_code == 0
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "--wheel-dir",
                            str(wheels), str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("ganforge_wheelgen-0.1.0-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # a pure-Python wheel installs by unpacking
        names = archive.namelist()
        assert "ganforge_wheelgen/recipes/wheelgen_quick.toml" in names
        assert not any(n.startswith("tests/") for n in names)
        entry_points = archive.read("ganforge_wheelgen-0.1.0.dist-info/entry_points.txt")
        archive.extractall(site)
    assert entry_points.decode().split() == ["[ganforge]", "wheelgen", "=",
                                             "ganforge_wheelgen.plugin"]

    from ganforge import load_plugins
    from ganforge.recipe.loading import find_recipe

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        plugins = load_plugins()
        record = next(r for r in plugins.records if r.name == "wheelgen")
        assert (record.status, record.distribution) == ("loaded", "ganforge-wheelgen")
        assert plugins.registry.entry("dataset", "wheelgen:stripes").plugin == "wheelgen"
        assert find_recipe("wheelgen:wheelgen_quick") == (
            site / "ganforge_wheelgen" / "recipes" / "wheelgen_quick.toml")
    finally:
        _forget("ganforge_wheelgen")
