"""The component state protocol: a component's tensors and JSON-able values go into every
checkpoint under its table name and come back exactly on resume; components are told the
step; a mismatch between a checkpoint's state and the recipe's components is refused."""

from __future__ import annotations

import types
from pathlib import Path

import attrs
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ganforge import hookimpl, load_plugins
from ganforge.errors import CheckpointError
from ganforge.interfaces import ComponentState, Loss
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import read_checkpoint


class AdaptiveBCE(Loss):
    """BCE whose fake term is weighted by a running mean of D's real logits (a tensor) and
    that counts the steps it has seen (a JSON value): state that changes what is computed,
    so a resume that lost it would not be exact."""

    @attrs.frozen
    class Params:
        momentum: float = 0.5

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.running = torch.zeros(())
        self.steps_seen: list[int] = []

    def on_step(self, step: int) -> None:
        self.steps_seen.append(step)

    def discriminator_loss(self, discriminator, real, fake):
        real_logits = discriminator(real)
        m = self.params.momentum
        self.running = m * self.running + (1 - m) * real_logits.detach().float().mean().cpu()
        weight = torch.sigmoid(self.running).to(real_logits.device)
        return F.softplus(-real_logits).mean() + weight * F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator, fake):
        return F.softplus(-discriminator(fake)).mean()

    def component_state(self) -> ComponentState:
        return ComponentState({"running": self.running}, {"steps_seen": self.steps_seen})

    def load_component_state(self, state: ComponentState) -> None:
        self.running = state.tensors["running"].clone()
        self.steps_seen = list(state.values["steps_seen"])


def plugins_with_adaptive_loss():
    plugin = types.ModuleType("adaptive_loss")

    @hookimpl
    def ganforge_register(registry):
        registry.register("loss", "adaptive_bce", AdaptiveBCE)

    plugin.ganforge_register = ganforge_register
    return load_plugins(extra=[("adaptive_loss", plugin)])


def run(plugins, recipe: Path, out: Path, *overrides: str, resume: bool = False):
    return train(load_recipe(recipe, plugins.registry, overrides), plugins, out,
                 resume=resume, progress=False)


def test_component_state_is_checkpointed_and_resumed_exactly(tiny_recipe: Path,
                                                             tmp_path: Path) -> None:
    plugins = plugins_with_adaptive_loss()
    loss = ("loss.use=adaptive_bce",)
    whole = run(plugins, tiny_recipe, tmp_path / "whole", *loss)
    run(plugins, tiny_recipe, tmp_path / "split", *loss, "run.steps=3")
    split = run(plugins, tiny_recipe, tmp_path / "split", *loss, resume=True)
    a, b = load_file(whole.checkpoint), load_file(split.checkpoint)
    assert a.keys() == b.keys() and "state/loss/running" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key  # weights, optimizers and the loss's state
    saved = read_checkpoint(split.checkpoint)
    assert saved.components == {"loss": {"steps_seen": [1, 2, 3, 4, 5, 6]}}  # told each step


def test_a_checkpoint_with_state_the_recipe_cannot_take_is_refused(tiny_recipe: Path,
                                                                  tmp_path: Path) -> None:
    plugins = plugins_with_adaptive_loss()
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "loss.use=adaptive_bce", "run.steps=3")
    checkpoint = out / "checkpoints" / "step-0000003.safetensors"
    from ganforge.training import Trainer

    trainer = Trainer(load_recipe(tiny_recipe, plugins.registry, ["run.steps=3"]), plugins,
                      tmp_path / "other", progress=False)
    trainer.recipe = load_recipe(tiny_recipe, plugins.registry,
                                 ["loss.use=adaptive_bce", "run.steps=3"])  # same recipe text
    with pytest.raises(CheckpointError, match=r"holds state for \[loss\], but its component "
                                              r"BCELoss keeps none"):
        trainer.restore(checkpoint)

