"""Contract tests of the {{name}} plugin: ganforge's kit checks every component the way the
trainer uses it (``ganforge.testing``; see ganforge's docs/testing-plugins.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ganforge.testing import check_component, check_hooks, check_training, plugin_registry

PLUGIN = "{{name}}"
MODULE = "{{package}}.plugin"
#: (kind, short name) of every component the plugin registers.
COMPONENTS = [
    ("generator", "mlp"),  # only: generator
    ("discriminator", "mlp"),  # only: discriminator
    ("loss", "least_squares"),  # only: loss
    ("optimizer", "sgd"),  # only: optimizer
    ("scheduler", "step_decay"),  # only: scheduler
    ("regularizer", "drift"),  # only: regularizer
    ("augment", "brightness_contrast"),  # only: augment
    ("dataset", "stripes"),  # only: dataset
    ("extractor", "colour_stats"),  # only: extractor
]
NEEDS_DCGAN = ("the recipe uses the dcgan plugin (ganforge-dcgan), "  # only: dcgan
               "which is not installed")  # only: dcgan
RECIPE = Path(__file__).parent.parent / "{{package}}" / "recipes" / "{{name}}_quick.toml"


@pytest.fixture(scope="module")
def registry():
    """The installed plugins plus this one, whether or not it is installed."""
    return plugin_registry(PLUGIN, MODULE)


@pytest.mark.parametrize(("kind", "name"), COMPONENTS)
def test_component_keeps_the_contract(registry, kind: str, name: str) -> None:
    # train: also a tiny run trained straight and with a resume, for every kind a training
    # run uses (datasets included; extractors serve metrics, after training).
    check_component(kind, f"{PLUGIN}:{name}", registry=registry,
                    train=kind != "extractor")


def test_every_component_is_checked(registry) -> None:
    from ganforge.kinds import KINDS

    registered = {(e.kind, e.name) for kind in KINDS for e in registry.list(kind)
                  if e.plugin == PLUGIN}
    assert registered == set(COMPONENTS)


def test_settings_table_and_observer(registry, capsys) -> None:
    import importlib

    plugin = importlib.import_module(MODULE)
    assert registry.settings[PLUGIN] is plugin.Settings
    plugin.ganforge_run_started(Path("runs/x"), {"plugins": {PLUGIN: {"announce": True}}}, 3)
    plugin.ganforge_run_started(Path("runs/x"), {}, 0)  # no table: the defaults, silent
    assert capsys.readouterr().out == f"[{PLUGIN}] run {Path('runs/x')} starts at step 3\n"


def test_hooks_and_settings_survive_a_short_run(tmp_path) -> None:
    # The settings at their defaults (no [plugins.{{name}}] table) and every observer hook
    # called by a real few-step run: a hook that raises fails here, not in a user's run.
    check_hooks(PLUGIN, MODULE, run_dir=tmp_path / "run")


def test_quick_recipe_trains_and_resumes(registry) -> None:
    if ("generator", "dcgan:dcgan") not in registry:  # only: dcgan
        pytest.skip(NEEDS_DCGAN)  # only: dcgan
    # 4 steps straight and 2 + 2 with a resume, on small batches: identical ends.
    check_training(RECIPE, overrides=["run.batch_size=4"], registry=registry)
