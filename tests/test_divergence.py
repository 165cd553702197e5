"""Divergence: a non-finite loss or gradient stops the run (or rolls back), is reported
with its step and network, and never reaches a checkpoint."""

from __future__ import annotations

import json
import types
from pathlib import Path

import attrs
import pytest
import torch
from safetensors.torch import load_file

from ganforge import Loss, hookimpl, load_plugins
from ganforge.builtins.losses import BCELoss
from ganforge.errors import TrainingError
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import read_checkpoint


def nan_loss_plugin(network: str, at_call: int, forever: bool = False):
    """A BCE loss whose ``network`` loss is NaN on its ``at_call``-th call (once, or on
    every call from then on with ``forever``)."""

    class FlakyLoss(Loss):
        @attrs.frozen
        class Params:
            pass

        calls = {"discriminator": 0, "generator": 0}

        def _maybe_nan(self, which: str, value: torch.Tensor) -> torch.Tensor:
            self.calls[which] += 1
            hit = self.calls[which] >= at_call if forever else self.calls[which] == at_call
            return value * float("nan") if which == network and hit else value

        def discriminator_loss(self, d, real, fake):
            return self._maybe_nan("discriminator", BCELoss(None).discriminator_loss(d, real,
                                                                                     fake))

        def generator_loss(self, d, fake):
            return self._maybe_nan("generator", BCELoss(None).generator_loss(d, fake))

    module = types.ModuleType("flaky")

    @hookimpl
    def ganforge_register(registry):
        registry.register("loss", "flaky", FlakyLoss)

    module.ganforge_register = ganforge_register
    return load_plugins(extra=[("flaky", module)])


def run(plugins, recipe: Path, out: Path, *overrides: str):
    recipe = load_recipe(recipe, plugins.registry, ["loss.use=flaky", "run.checkpoint_every=1",
                                                    "run.log_every=3", *overrides])
    return train(recipe, plugins, out, progress=False)


@pytest.mark.parametrize("network", ["discriminator", "generator"])
def test_divergence_stops_with_step_and_network(tiny_recipe: Path, tmp_path: Path,
                                                network: str) -> None:
    plugins = nan_loss_plugin(network, at_call=4)
    with pytest.raises(TrainingError, match=f"the {network} diverged at step 4: non-finite "
                       "loss or gradient.*the run stopped; the last checkpoint .*"
                       "step-0000003.safetensors holds finite state"):
        run(plugins, tiny_recipe, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == [f"step-000000{i}.safetensors" for i in (1, 2, 3)]
    for name in names:
        tensors = load_file(tmp_path / "run" / "checkpoints" / name)
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_divergence_is_found_between_syncs(tiny_recipe: Path, tmp_path: Path) -> None:
    # No checkpoint, sample or log at step 4: the device-side watch still names step 4.
    plugins = nan_loss_plugin("generator", at_call=4)
    with pytest.raises(TrainingError, match="generator diverged at step 4: .*detected at "
                       "step 5"):
        run(plugins, tiny_recipe, tmp_path / "run", "run.checkpoint_every=5",
            "run.log_every=5", "run.sample_every=5")


def test_rollback_goes_on_and_logs_every_rollback(tiny_recipe: Path, tmp_path: Path) -> None:
    plugins = nan_loss_plugin("discriminator", at_call=4)
    result = run(plugins, tiny_recipe, tmp_path / "run", "run.on_divergence=rollback")
    assert result.step == 6
    records = [json.loads(x) for x in (tmp_path / "run" / "rollbacks.jsonl").open()]
    assert records == [{"step": 3, "rollback": 1, "network": "discriminator",
                        "first_bad_step": 4, "detected_at": 4,
                        "checkpoint": "step-0000003.safetensors"}]
    final = read_checkpoint(result.checkpoint)
    assert final.trainer.rollbacks == 1
    assert all(torch.isfinite(t).all() for t in final.tensors.values() if t.is_floating_point())


def test_rollbacks_are_limited(tiny_recipe: Path, tmp_path: Path) -> None:
    plugins = nan_loss_plugin("discriminator", at_call=4)
    with pytest.raises(TrainingError, match=r"0 rollbacks already \(run.max_rollbacks\)"):
        run(plugins, tiny_recipe, tmp_path / "run", "run.on_divergence=rollback",
            "run.max_rollbacks=0")


def test_no_checkpoint_to_roll_back_to(tiny_recipe: Path, tmp_path: Path) -> None:
    plugins = nan_loss_plugin("discriminator", at_call=1)
    with pytest.raises(TrainingError, match="diverged at step 1.*no checkpoint to roll back"):
        run(plugins, tiny_recipe, tmp_path / "run", "run.on_divergence=rollback")


def test_a_divergence_that_keeps_coming_back_stops_at_the_limit(tiny_recipe: Path,
                                                                 tmp_path: Path) -> None:
    # Every attempt diverges again before a new checkpoint is written, so each rollback
    # restores the same checkpoint: the count must not be reset by it.
    plugins = nan_loss_plugin("discriminator", at_call=4, forever=True)
    with pytest.raises(TrainingError, match=r"2 rollbacks already \(run.max_rollbacks\)"):
        run(plugins, tiny_recipe, tmp_path / "run", "run.on_divergence=rollback",
            "run.max_rollbacks=2")
    records = [json.loads(x) for x in (tmp_path / "run" / "rollbacks.jsonl").open()]
    assert [r["rollback"] for r in records] == [1, 2]
