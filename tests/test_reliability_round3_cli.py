"""Issue 23, "Reliability, round three": commands and recipes.

Item 4: ``run --out`` refuses a folder of other files; 6: a recipe must be a regular file of
at most 1 MiB; 7: eval image counts have a ceiling; 9: a plugin whose import hangs is
recorded as failed after a time limit; 11: ``new plugin`` refuses a taken name; 12: the
resume hint keeps the ``--set`` options, and an ``extends`` list has at most 64 entries.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import tomllib
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge import load_plugins
from ganforge.cli import app
from ganforge.errors import PluginError, RecipeError, UsageError
from ganforge.evaluation.metrics import MAX_IMAGES
from ganforge.recipe import build_recipe, load_raw
from ganforge.recipe.loading import MAX_EXTENDS_ENTRIES, MAX_RECIPE_BYTES
from tests.conftest import one_error_line

QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.toml"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])




def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- item 4: a folder of other files is not a run directory ---------------------------------

@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize(("files", "first"), [
    ({"metrics.jsonl": "my notes\n", "samples/step-0000003.png": "my picture",
      "skipped.jsonl": "mine\n"}, "metrics.jsonl"),
    ({"samples/step-0000003.png": "my picture"}, "samples/step-0000003.png"),
    ({"notes.txt": "mine"}, "notes.txt"),
])
def test_run_refuses_a_folder_of_other_files(tiny_recipe: Path, tmp_path: Path,
                                             files: dict[str, str], first: str,
                                             resume: bool) -> None:
    out = tmp_path / "mine"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = snapshot(out)
    result = invoke("run", tiny_recipe, "--out", out, "--quiet",
                    *(["--resume"] if resume else []))
    one_error_line(result, f"{out} is not empty and holds no ganforge run (found {out / first})")
    assert snapshot(out) == before
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        {*files, *(str(Path(n).parent) for n in files if "/" in n)})  # not even a lock file


def test_run_directories_and_resume_keep_working(tiny_recipe: Path, tmp_path: Path) -> None:
    # What a launch that failed before its recipe.toml leaves (the lock, empty folders) is
    # not someone else's: the next launch uses the folder.
    out = tmp_path / "run"
    (out / "samples").mkdir(parents=True)
    (out / "checkpoints").mkdir()
    (out / ".lock").write_text("12345\n")
    result = invoke("run", tiny_recipe, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "finished at step 6" in result.output
    again = invoke("run", tiny_recipe, "--out", out, "--quiet")
    one_error_line(again, "already holds a run; pass --resume")
    resumed = invoke("run", tiny_recipe, "--out", out, "--quiet", "--resume",
                     "--set", "run.steps=9")
    assert resumed.exit_code == 0, resumed.output
    assert "finished at step 9" in resumed.output


# -- item 6: a recipe is a regular file of at most 1 MiB -------------------------------------

def test_a_fifo_recipe_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "recipe.toml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    one_error_line(invoke("resolve", fifo), f"{fifo}: $: cannot read recipe: not a regular "
                   "file but a FIFO (named pipe)")
    child = tmp_path / "child.toml"
    child.write_text('extends = "recipe.toml"\n')
    with pytest.raises(RecipeError) as info:
        load_raw(child)
    assert str(info.value) == (f"{child}: $.extends: extended recipe '{fifo}' is not a regular "
                               "file but a FIFO (named pipe)")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_recipe_is_refused() -> None:
    one_error_line(invoke("resolve", "/dev/zero"),
                   "/dev/zero: $: cannot read recipe: not a regular file but a character device")


def test_a_recipe_over_one_mib_is_refused(tmp_path: Path) -> None:
    body = QUICKSTART.read_text()
    at_cap = tmp_path / "at_cap.toml"
    at_cap.write_text(body + "#" * (MAX_RECIPE_BYTES - len(body.encode()) - 1) + "\n")
    assert at_cap.stat().st_size == MAX_RECIPE_BYTES
    assert invoke("resolve", at_cap).exit_code == 0
    over = tmp_path / "over.toml"
    over.write_text(body + "#" * (MAX_RECIPE_BYTES - len(body.encode())) + "\n")
    one_error_line(invoke("resolve", over),
                   f"{over}: $: cannot read recipe: larger than 1 MiB, the most a recipe may hold")


# -- item 12 (b): an extends list has at most 64 entries -------------------------------------

def test_an_extends_list_has_at_most_64_entries(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text("[run]\nsteps = 7\n")
    ok = tmp_path / "ok.toml"
    ok.write_text(f"extends = {['b.toml'] * MAX_EXTENDS_ENTRIES}\n".replace("'", '"'))
    assert load_raw(ok) == {"run": {"steps": 7}}
    for count in (MAX_EXTENDS_ENTRIES + 1, 100_000):  # 100,000 entries: 900 kB, under 1 MiB
        long = tmp_path / f"long{count}.toml"
        long.write_text(f"extends = {['b.toml'] * count}\n".replace("'", '"'))
        with pytest.raises(RecipeError) as info:
            load_raw(long)
        assert str(info.value) == (f"{long}: $.extends: {count} entries; an extends list "
                                   f"holds at most {MAX_EXTENDS_ENTRIES}")


# -- item 7: eval image counts have a ceiling -----------------------------------------------

@pytest.mark.parametrize(("metric", "key", "value", "path"), [
    ("fid", "n_fake", 10**12, "$.eval.metrics.fid.n_fake"),
    ("kid", "n_real", MAX_IMAGES + 1, "$.eval.metrics.kid.n_real"),
    ("precision", "n_fake", MAX_IMAGES + 1, "$.eval.metrics.precision.n_fake"),
    # The digit metrics redeclare n_fake (default 26,000) with the same ceiling.
    ("modes", "n_fake", MAX_IMAGES + 1, "$.eval.metrics.modes.n_fake"),
])
def test_eval_image_counts_have_a_ceiling(plugins, metric: str, key: str, value: int,
                                          path: str) -> None:
    table = tomllib.loads(QUICKSTART.read_text())
    table["eval"] = {"every": 10, "metrics": {metric: {"use": metric, key: value}}}
    with pytest.raises(RecipeError) as info:
        build_recipe(table, plugins.registry)
    assert info.value.problems == [(path, f"'{key}' must be <= {MAX_IMAGES}: {value}")]
    table["eval"]["metrics"][metric][key] = MAX_IMAGES
    recipe = build_recipe(table, plugins.registry)
    assert getattr(recipe.metrics[metric].params, key) == MAX_IMAGES


@pytest.mark.parametrize(("args", "piece"), [
    (["--n", "1000000000000"], f"--n 1000000000000 is out of range: 2 to {MAX_IMAGES}"),
    (["--n-real", str(MAX_IMAGES + 1)], f"--n-real {MAX_IMAGES + 1} is out of range"),
    (["--per-class", "--n-per-class", "10000000"], "--n-per-class 10000000 is out of range"),
])
def test_eval_refuses_huge_counts_before_anything_loads(tmp_path: Path, monkeypatch,
                                                        args: list[str], piece: str) -> None:
    def no_plugins() -> None:
        raise AssertionError("plugins loaded before the options were checked")

    monkeypatch.setattr("ganforge.cli.eval_commands.load_plugins_or_warn", no_plugins)
    one_error_line(invoke("eval", tmp_path / "missing.safetensors", *args), piece)


# -- item 9: a plugin whose import hangs ----------------------------------------------------

HANGING_PLUGIN = """
import hang_gate

hang_gate.started.set()
hang_gate.gate.wait()  # never set while the test checks: an import that hangs
"""


#: Not a time any check waits for: a safety net that ends the hang, should ``load_plugins``
#: wait for the import (as it did before the time limit), so that the test then fails on
#: ``not gate.is_set()`` instead of hanging the suite.
SAFETY_NET_S = 300.0


@pytest.fixture
def hanging_plugin(fake_dist):
    load_plugins()  # the real plugins imported already: only the hanging one meets the limit
    gate = types.ModuleType("hang_gate")
    gate.gate, gate.started = threading.Event(), threading.Event()
    sys.modules["hang_gate"] = gate
    fake_dist("ganforge-hang", "hang_plugin", HANGING_PLUGIN)
    net = threading.Timer(SAFETY_NET_S, gate.gate.set)
    net.daemon = True
    net.start()
    yield gate
    net.cancel()
    gate.gate.set()  # let the abandoned imports end, and wait until they have
    for thread in threading.enumerate():
        if thread.name == "ganforge-plugin-import-hang":
            thread.join()
    sys.modules.pop("hang_gate", None)


def test_a_plugin_whose_import_hangs_is_recorded_as_failed(hanging_plugin, monkeypatch) -> None:
    monkeypatch.setenv("GANFORGE_PLUGIN_IMPORT_TIMEOUT", "0.5")
    plugins = load_plugins()
    assert hanging_plugin.started.is_set() and not hanging_plugin.gate.is_set()
    record = next(r for r in plugins.records if r.name == "hang")
    assert record.status == "failed"
    assert record.error == ("PluginError: import of 'hang_plugin' did not finish within 0.5 s "
                            "(GANFORGE_PLUGIN_IMPORT_TIMEOUT)")
    assert "hang_gate.gate.wait()" in record.traceback  # where it hung, for --debug
    # The rest keep working.
    assert {r.name: r.status for r in plugins.records}["dcgan"] == "loaded"
    assert "dcgan" in plugins.registry.names("generator")
    with pytest.raises(PluginError, match=r"plugin 'hang' \(ganforge-hang 1.2.3\) failed: "
                                          "PluginError: import of 'hang_plugin' did not finish"):
        load_plugins(strict=True, import_timeout_s=0.5)
    assert not hanging_plugin.gate.is_set()


def test_a_hanging_plugin_is_one_warning_line_and_the_command_goes_on(hanging_plugin,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("GANFORGE_PLUGIN_IMPORT_TIMEOUT", "0.5")
    result = invoke("resolve", QUICKSTART)
    assert not hanging_plugin.gate.is_set()
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "hang" in line]
    assert warnings == ["warning: plugin 'hang' (ganforge-hang 1.2.3) failed and was skipped: "
                        "PluginError: import of 'hang_plugin' did not finish within 0.5 s "
                        "(GANFORGE_PLUGIN_IMPORT_TIMEOUT)"]


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_import_timeout_is_one_line(monkeypatch, value: str) -> None:
    monkeypatch.setenv("GANFORGE_PLUGIN_IMPORT_TIMEOUT", value)
    with pytest.raises(UsageError, match="GANFORGE_PLUGIN_IMPORT_TIMEOUT=.*expected a positive "
                                         "number of seconds"):
        load_plugins()
    one_error_line(invoke("resolve", QUICKSTART), "GANFORGE_PLUGIN_IMPORT_TIMEOUT")


# -- item 11: new plugin refuses taken names ------------------------------------------------

@pytest.mark.parametrize(("name", "piece"), [
    ("dcgan", "plugin name 'dcgan' is taken by the plugin shipped with ganforge "
              "(ganforge-dcgan); choose another"),
    ("resnet", "plugin name 'resnet' is taken by the plugin shipped with ganforge"),
    ("wandb", "plugin name 'wandb' is taken by an installed plugin (ganforge "),
])
def test_new_plugin_refuses_shipped_and_installed_names(tmp_path: Path, name: str,
                                                        piece: str) -> None:
    out = tmp_path / "new"
    one_error_line(invoke("new", "plugin", name, "--out", out), piece)
    assert not out.exists()


def test_new_plugin_refuses_the_names_of_other_installed_plugins(tmp_path: Path,
                                                                 fake_dist) -> None:
    fake_dist("ganforge-mine", "mine_plugin", "")
    fake_dist("ganforge-theirs", "other_plugin", "", entry="other")
    one_error_line(invoke("new", "plugin", "mine", "--out", tmp_path / "a"),
                   "plugin name 'mine' is taken by an installed plugin (ganforge-mine 1.2.3)")
    one_error_line(invoke("new", "plugin", "theirs", "--out", tmp_path / "b"),
                   "plugin name 'theirs' is taken: distribution ganforge-theirs 1.2.3 is "
                   "installed")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- item 12 (a): the resume hint keeps the --set options -----------------------------------

def test_following_the_resume_hint_resumes(tiny_recipe: Path, tmp_path: Path,
                                           monkeypatch) -> None:
    from ganforge import hookimpl

    stopper = types.ModuleType("stopper")

    @hookimpl
    def ganforge_log(step, metrics):
        signal.raise_signal(signal.SIGINT)  # the user's Ctrl-C at the first log step

    stopper.ganforge_log = ganforge_log
    with monkeypatch.context() as patch:
        patch.setattr("ganforge.cli.commands.load_plugins_or_warn",
                      lambda: load_plugins(extra=[("stopper", stopper)]))
        out = tmp_path / "my run"
        # A --set that changes what is computed (a resume without it is refused), written
        # with spaces that the shell must keep together.
        first = invoke("run", tiny_recipe, "--out", out, "--quiet",
                       "--set", "generator.width = 6", "--set", "run.log_every=2")
    assert first.exit_code == 130, first.output
    hint = next(line for line in first.output.splitlines() if line.startswith("resume with: "))
    assert hint == (f"resume with: ganforge run {tiny_recipe} --set 'generator.width = 6' "
                    f"--set run.log_every=2 --out '{out}' --resume")
    words = shlex.split(hint.removeprefix("resume with: "))
    assert words[:2] == ["ganforge", "run"]
    resumed = invoke(*words[1:], "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert "finished at step 6" in resumed.output
