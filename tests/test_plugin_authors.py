"""What plugin authors rely on: qualified names, requirements, extra figures, their own
recipe table, one ``ganforge_log`` per step, ``ganforge_check`` with the experiment, and
diagnostics (tracebacks with --debug, pluggy's message whole, markup never swallowed, a
checkpoint naming the distribution it needs)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge import load_plugins
from ganforge.cli import app
from ganforge.errors import CheckpointError, RecipeError
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.assembly import load_experiment

from .conftest import TINY_RECIPE

#: A plugin with a loss named like the built-in, requirements, figures and settings.
AUTHOR = '''
import attrs
import torch
import torch.nn.functional as F
from ganforge import Loss, hookimpl, param
from ganforge.interfaces import requires


class PenaltyHinge(Loss):
    """A hinge loss that reports a figure and needs things of the recipe.

    Its docstring mentions the [sweep] and [dataset] tables, indented as usual."""

    @attrs.frozen
    class Params:
        """Its params."""
        strict: bool = param(False, "refuse recipes with d_steps < 2 instead of warning")

    def __init__(self, params):
        super().__init__(params)
        self.last = torch.zeros(())

    @classmethod
    def requirements(cls, params, recipe):
        return [requires("run.d_steps >= 2", recipe.run.d_steps >= 2,
                         "a critic trained more often", warn=not params.strict)]

    def discriminator_loss(self, discriminator, real, fake, *, real_labels=None,
                           fake_labels=None):
        real_out = discriminator(real, real_labels)
        self.last = real_out.detach().mean()
        return F.relu(1 - real_out).mean() + F.relu(1 + discriminator(fake, fake_labels)).mean()

    def generator_loss(self, discriminator, fake, *, fake_labels=None):
        return -discriminator(fake, fake_labels).mean()

    def figures(self):
        return {"loss/real_mean": self.last, "loss_d": 123.0}


@attrs.frozen
class Settings:
    """The plugin's own settings."""
    greeting: str = param("hello", "what the observer writes")


SEEN = []


@hookimpl
def ganforge_register(registry):
    registry.register("loss", "hinge", PenaltyHinge)
    registry.register_settings(Settings)


@hookimpl
def ganforge_log(step, metrics):
    SEEN.append((step, dict(metrics)))


@hookimpl
def ganforge_check(generator, discriminator, experiment, recipe):
    SEEN.append(("check", type(experiment).__name__, recipe["loss"].name))
    return []
'''


@pytest.fixture
def author(fake_dist):
    fake_dist("ganforge-author", "author_plugin", AUTHOR, entry="author")
    import author_plugin

    author_plugin.SEEN.clear()
    return author_plugin


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_qualified_names_are_recorded_and_the_built_in_keeps_its_short_name(
        author, tmp_path: Path) -> None:
    plugins = load_plugins()
    assert {r.name: r.status for r in plugins.records}["author"] == "loaded"
    plain = load_recipe(write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "hinge"\n'),
                        plugins.registry)
    assert plain["loss"].name == "ganforge:hinge"  # the core's name keeps its short form
    theirs = load_recipe(write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "author:hinge"\n'),
                         plugins.registry, ["run.d_steps=2"])
    assert theirs["loss"].name == "author:hinge"
    resolved = tomllib.loads(theirs.to_toml())
    assert resolved["loss"]["use"] == "author:hinge"
    assert resolved["generator"]["use"] == "dcgan:dcgan"
    assert resolved["optimizer"]["generator"]["use"] == "ganforge:adam"
    run = train(theirs, plugins, tmp_path / "run", progress=False)
    saved = tomllib.loads((tmp_path / "run" / "recipe.toml").read_text())
    assert saved["loss"]["use"] == "author:hinge"
    assert load_experiment(run.checkpoint, plugins.registry).recipe["loss"].name == \
        "author:hinge"


def test_a_checkpoint_names_the_distribution_it_needs(author, tmp_path: Path) -> None:
    plugins = load_plugins()
    recipe = load_recipe(write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "author:hinge"\n'),
                         plugins.registry, ["run.d_steps=2"])
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    without = load_plugins(disabled=["author"])
    with pytest.raises(CheckpointError) as info:
        load_experiment(checkpoint, without.registry)
    message = str(info.value)
    assert "\n" not in message
    assert "no plugin 'author' is loaded" in message
    assert "pip install ganforge-author==1.2.3" in message


def test_requirements_refuse_or_warn(author, tmp_path: Path) -> None:
    plugins = load_plugins()
    path = write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "author:hinge"\n')
    warned = load_recipe(path, plugins.registry)
    assert warned.warnings == ("[loss] 'author:hinge' needs run.d_steps >= 2 (a critic "
                               "trained more often)",)
    assert warned.warnings[0] in warned.notes()
    assert load_recipe(path, plugins.registry, ["run.d_steps=2"]).warnings == ()
    with pytest.raises(RecipeError) as info:
        load_recipe(path, plugins.registry, ["loss.strict=true"])
    assert info.value.problems == [("$.loss", "[loss] 'author:hinge' needs run.d_steps >= 2 "
                                              "(a critic trained more often)")]


def test_figures_are_logged_and_ganforge_log_fires_once_per_step(author, tmp_path: Path
                                                                  ) -> None:
    plugins = load_plugins()
    recipe = load_recipe(write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "author:hinge"\n'
                                         '\n[eval]\nevery = 3\n[eval.metrics.pix]\n'
                                         'use = "fid"\nn_fake = 8\nn_real = 8\n'
                                         'batch_size = 8\nextractor = "pixels"\n'),
                         plugins.registry, ["run.d_steps=2"])
    train(recipe, plugins, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines()]
    losses = [x for x in lines if "loss_d" in x]
    assert all("loss/real_mean" in x for x in losses)
    # "loss_d" is the trainer's: the component's figure of that name is prefixed.
    assert all(x["loss/loss_d"] == 123.0 and x["loss_d"] != 123.0 for x in losses)
    steps = [s for s, _ in author.SEEN]
    assert steps == sorted(set(steps))  # one call per logged step
    last = dict(author.SEEN)[6]  # the last step logs and evaluates: one call with both
    assert "loss_d" in last and "eval/pix" in last
    assert "loss_d" not in dict(author.SEEN)[3]  # step 3 only evaluates (log_every = 2)


def test_plugin_settings_table(author, tmp_path: Path) -> None:
    plugins = load_plugins()
    recipe = load_recipe(write(tmp_path, TINY_RECIPE + '\n[plugins.author]\ngreeting = "hi"\n'),
                         plugins.registry)
    assert recipe.plugins["author"].greeting == "hi"
    assert tomllib.loads(recipe.to_toml())["plugins"] == {"author": {"greeting": "hi"}}
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, TINY_RECIPE + '\n[plugins.autor]\ngreeting = "hi"\n'),
                    plugins.registry)
    assert info.value.problems == [("$.plugins.autor", "unknown plugin table, did you mean "
                                                       "'author'?")]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, TINY_RECIPE + '\n[plugins.author]\ngreting = "hi"\n'),
                    plugins.registry)
    assert info.value.problems[0][0] == "$.plugins.author.greting"


def test_check_hands_the_experiment_and_the_recipe_to_ganforge_check(author, tmp_path: Path
                                                                     ) -> None:
    path = write(tmp_path, TINY_RECIPE + '\n[loss]\nuse = "author:hinge"\n')
    result = CliRunner().invoke(app, ["check", str(path), "--set", "run.d_steps=2"])
    assert result.exit_code == 0, result.output
    assert ("check", "Experiment", "author:hinge") in author.SEEN


def test_components_show_keeps_brackets_and_dedents(author) -> None:
    result = CliRunner().invoke(app, ["components", "show", "loss", "author:hinge"])
    assert result.exit_code == 0, result.output
    assert "Its docstring mentions the [sweep] and [dataset] tables, indented as usual." \
        in result.output
    listing = CliRunner().invoke(app, ["components", "loss"])
    assert "author:hinge" in listing.output and "ganforge:hinge" in listing.output


def test_help_keeps_recipe_table_names() -> None:
    result = CliRunner().invoke(app, ["ablate", "--help"])
    assert "([sweep] table)" in result.output


BROKEN = '''
from ganforge import hookimpl

@hookimpl
def ganforge_log(step, metrix):
    pass
'''


def test_pluggy_message_is_whole_and_debug_shows_the_traceback(fake_dist) -> None:
    fake_dist("ganforge-typo", "typo_plugin", BROKEN, entry="typo")
    record = next(r for r in load_plugins().records if r.name == "typo")
    assert record.status == "failed"
    assert "metrix" in record.error and "\n" not in record.error
    plain = CliRunner().invoke(app, ["components", "loss"])
    assert "metrix" in plain.output and "Traceback" not in plain.output
    debug = CliRunner().invoke(app, ["--debug", "components", "loss"])
    assert "Traceback (most recent call last)" in debug.output


RAISES = '''
from ganforge import hookimpl

def helper_that_fails():
    raise ValueError("deep inside the plugin")

@hookimpl
def ganforge_register(registry):
    helper_that_fails()
'''


def test_debug_shows_where_a_plugin_failed(fake_dist) -> None:
    fake_dist("ganforge-raises", "raises_plugin", RAISES, entry="raises")
    debug = CliRunner().invoke(app, ["--debug", "components", "loss"])
    assert "helper_that_fails" in debug.output and "deep inside the plugin" in debug.output


def test_a_short_use_over_a_resolved_recipe_keeps_the_params(plugins, tiny_recipe: Path
                                                              ) -> None:
    """A resolved recipe says ``dcgan:dcgan``; a variant saying ``dcgan`` names the same
    component, so the table keeps its params (a different component starts afresh)."""
    recipe = load_recipe(tiny_recipe, plugins.registry)
    again = recipe.with_overrides(["generator.use=dcgan", "loss.use=bce"], plugins.registry)
    assert again["generator"].params == recipe["generator"].params
    other = recipe.with_overrides(["loss.use=hinge"], plugins.registry)
    assert other["loss"].name == "ganforge:hinge"


def test_run_by_recipe_name_uses_the_recipe_name_for_its_folder(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "ganforge:quickstart", "--quiet", "--set",
                                      "run.steps=1", "--set", "run.device=cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "quickstart" / "recipe.toml").is_file()


def test_an_installed_plugin_passed_again_as_extra_loads_once() -> None:
    """A plugin's own test suite loads it with ``extra`` while it is also installed (the
    usual development setup): it is loaded once, not refused as a second plugin."""
    from ganforge_dcgan import plugin as dcgan_plugin

    plugins = load_plugins(extra=[("dcgan", dcgan_plugin)])
    dcgan = [r for r in plugins.records if r.name == "dcgan"]
    assert [r.status for r in dcgan] == ["loaded"] and not plugins.problems
    assert plugins.registry.qualified("generator", "dcgan") == "dcgan:dcgan"


def test_paths_with_brackets_print_as_they_are(tmp_path: Path, tiny_recipe: Path) -> None:
    out = tmp_path / "run[bold]x"
    result = CliRunner().invoke(app, ["run", str(tiny_recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"checkpoint: {out}/checkpoints/" in result.output
