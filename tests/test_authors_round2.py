"""Issue 26, round two: rough edges for plugin authors and researchers (items 3, 4, 5, 7,
8 and 9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import app

ROOT = Path(__file__).parent.parent


# -- 4. docs/recipes.md names every allowed top-level table ------------------------------


def test_recipes_doc_lists_the_top_level_tables() -> None:
    from ganforge.recipe.model import _TOP_LEVEL

    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    start = text.index("The allowed top-level tables are")
    paragraph = text[start:text.index("Any other top-level name", start)]
    listed = {name for line in paragraph.splitlines() if line.startswith("- ")
              for name in re.findall(r"`([a-z]+)`", line.split(":")[0])}
    assert listed == set(_TOP_LEVEL)
    assert f"these {_number(len(_TOP_LEVEL))}" in paragraph
    assert "six" not in paragraph


def _number(n: int) -> str:
    return {11: "eleven", 12: "twelve", 13: "thirteen"}.get(n, str(n))


# -- 5. ganforge recipes: each recipe once, names whole ----------------------------------


def test_recipes_are_listed_once_under_their_owner() -> None:
    from ganforge.recipe.loading import _find_named, shipped_recipes

    found = shipped_recipes()
    assert "quickstart" in found["ganforge"]
    # wandb and mlflow are ganforge's own entry points: same folder, not listed again
    assert "wandb" not in found and "mlflow" not in found
    # ... but their names still resolve
    assert _find_named("wandb:quickstart") == found["ganforge"]["quickstart"]


def test_recipes_command_never_cuts_names() -> None:
    result = CliRunner().invoke(app, ["recipes"], env={"COLUMNS": "30"})
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert "ganforge:ablations/loss_norm_penalty_cifar10" in names
    assert "ganforge:quickstart_conditional" in names
    assert not any(name.startswith(("wandb:", "mlflow:")) for name in names)
    assert len(names) == len(set(names))
    assert "…" not in result.output


# -- 8. a component of a plugin that failed to load says so, and why ---------------------

QUICKSTART = ROOT / "ganforge" / "recipes" / "quickstart.toml"


def test_component_of_a_failed_plugin_names_the_failure(fake_dist) -> None:
    from ganforge import load_plugins
    from ganforge.errors import RecipeError, UnknownComponentError
    from ganforge.recipe import load_recipe

    fake_dist("ganforge-condmlp", "condmlp_plugin", "raise ImportError('no module named foo')")
    plugins = load_plugins()
    with pytest.raises(UnknownComponentError) as info:
        plugins.registry.entry("generator", "condmlp:condmlp")
    text = str(info.value)
    assert "is its distribution installed" not in text
    assert ("plugin 'condmlp' (ganforge-condmlp 1.2.3) failed to load: ImportError: no module "
            "named foo") in text
    with pytest.raises(RecipeError) as recipe_info:
        load_recipe(QUICKSTART, plugins.registry, ["generator.use=condmlp:condmlp"])
    assert "failed to load: ImportError: no module named foo" in str(recipe_info.value)
    # A short name of the failed plugin mentions the failure too.
    with pytest.raises(UnknownComponentError, match="'condmlp' .* failed to load"):
        plugins.registry.entry("generator", "condmlp")


def test_plugin_not_installed_keeps_its_message(plugins) -> None:
    from ganforge.errors import UnknownComponentError

    with pytest.raises(UnknownComponentError, match="is its distribution installed"):
        plugins.registry.entry("generator", "nosuch:gen")


# -- 9. a short name a shipped component also has ----------------------------------------

HINGE = """
import attrs
from ganforge import Loss, hookimpl

class MyHinge(Loss):
    '''Another hinge.'''
    @attrs.frozen
    class Params:
        pass
    def discriminator_loss(self, d, real, fake):
        return d(real).sum() * 0
    def generator_loss(self, d, fake):
        return d(fake).sum() * 0

@hookimpl
def ganforge_register(registry):
    registry.register("loss", "hinge", MyHinge)
"""


def test_shadowed_short_name_is_shown_and_warned(fake_dist) -> None:
    from ganforge import load_plugins
    from ganforge.recipe import load_recipe

    fake_dist("ganforge-myhinge", "myhinge_plugin", HINGE)
    plugins = load_plugins()
    record = next(r for r in plugins.records if r.name == "myhinge")
    assert record.status == "loaded"
    assert "loss 'hinge' means the shipped ganforge:hinge; myhinge:hinge" in record.error
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "myhinge:hinge registers the same short name" in result.output

    recipe = load_recipe(QUICKSTART, plugins.registry, ["loss.use=hinge"])
    assert recipe["loss"].name == "ganforge:hinge"
    assert [w for w in recipe.warnings if "myhinge:hinge" in w] == [
        "$.loss.use: loss 'hinge' means the shipped ganforge:hinge; myhinge:hinge registers "
        "the same short name (write the qualified name to choose it)"]
    chosen = load_recipe(QUICKSTART, plugins.registry, ["loss.use=myhinge:hinge"])
    assert chosen["loss"].name == "myhinge:hinge"
    assert not [w for w in chosen.warnings if "myhinge" in w]
    # `ganforge check` prints the warning line
    result = CliRunner().invoke(app, ["check", str(QUICKSTART), "--set", "loss.use=hinge"],
                                env={"COLUMNS": "400"})
    assert "warning: $.loss.use: loss 'hinge' means the shipped ganforge:hinge" in result.output


# -- 7. check (and run) probe G and D: a G whose images D cannot take is one line ---------

HALF = """
import attrs
import torch
from torch import nn
from ganforge import Generator, hookimpl

class HalfGenerator(Generator):
    '''Says it makes the dataset's images; makes them at half the size.'''
    @attrs.frozen
    class Params:
        pass
    def __init__(self, params, image_spec):
        super().__init__()
        self.params, self._spec = params, image_spec
        self.layer = nn.Linear(8, image_spec.channels * (image_spec.size // 2) ** 2)
    @property
    def latent_dim(self):
        return 8
    @property
    def image_spec(self):
        return self._spec
    def sample_latent(self, n, generator, device=None):
        return torch.randn(n, 8, generator=generator).to(device or "cpu")
    def forward(self, z):
        s = self._spec
        return torch.tanh(self.layer(z)).view(len(z), s.channels, s.size // 2, s.size // 2)

@hookimpl
def ganforge_register(registry):
    registry.register("generator", "half", HalfGenerator)
"""

HALF_MESSAGE = ("$.generator: generator 'half:half' produces (N, 1, 16, 16) images, but the "
                "dataset and discriminator 'dcgan:dcgan' take (N, 1, 32, 32)")


def test_check_names_both_shapes_of_a_mismatch(fake_dist) -> None:
    fake_dist("ganforge-half", "half_plugin", HALF)
    result = CliRunner().invoke(app, ["check", str(QUICKSTART), "--set", "generator.use=half"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "recipe ok" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and HALF_MESSAGE in errors[0], result.output
    assert "internal error" not in result.output


def test_check_reports_the_shapes_of_a_good_recipe() -> None:
    result = CliRunner().invoke(app, ["check", str(QUICKSTART)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "generator 'dcgan:dcgan': latent (N, 5) -> images (N, 1, 32, 32)" in result.output
    assert ("discriminator 'dcgan:dcgan': images (N, 1, 32, 32) -> logits (N,)"
            in result.output)


def test_run_refuses_the_mismatch_before_training(fake_dist, tmp_path) -> None:
    fake_dist("ganforge-half", "half_plugin", HALF)
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--out", str(tmp_path / "r"),
                                      "--set", "generator.use=half", "--set", "run.steps=1",
                                      "--set", "run.device=cpu"], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert HALF_MESSAGE in result.output
    assert "internal error" not in result.output and "padded input" not in result.output


def test_probe_falls_back_to_the_cpu_without_meta_kernels(plugins, monkeypatch) -> None:
    from ganforge.recipe import load_recipe
    from ganforge.training import shape_check

    real_probe = shape_check._probe
    devices = []

    def probe(generator, discriminator, spec, names, device):
        devices.append(device.type)
        if device.type == "meta":
            raise NotImplementedError("no meta kernel for this operation")
        return real_probe(generator, discriminator, spec, names, device)

    monkeypatch.setattr(shape_check, "_probe", probe)
    recipe = load_recipe(QUICKSTART, plugins.registry)
    state = torch.random.get_rng_state()
    shapes = shape_check.check_network_shapes(recipe, plugins.registry)
    assert devices == ["meta", "cpu"]
    assert shapes.images == (1, 32, 32) and shapes.logits == () and shapes.device == "cpu"
    assert torch.equal(torch.random.get_rng_state(), state)  # the global seed untouched
