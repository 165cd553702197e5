"""The catalog's losses and optimizers compute what their papers write."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge import load_plugins
from ganforge.errors import RecipeError


class MeanD(nn.Module):
    """A 'discriminator' whose logit is the image's mean pixel."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).mean(1)


@pytest.fixture(scope="module")
def registry():
    return load_plugins().registry


def test_wasserstein_loss(registry) -> None:
    loss = registry.create("loss", "wgan")
    real, fake = torch.full((4, 1, 2, 2), 0.5), torch.full((4, 1, 2, 2), -0.25)
    assert loss.discriminator_loss(MeanD(), real, fake).item() == pytest.approx(-0.75)
    assert loss.generator_loss(MeanD(), fake).item() == pytest.approx(0.25)


def test_least_squares_loss_with_its_coding(registry) -> None:
    loss = registry.create("loss", "lsgan", {"a": -1.0, "b": 1.0, "c": 0.0})
    real, fake = torch.full((4, 1, 2, 2), 0.5), torch.full((4, 1, 2, 2), -0.25)
    # 0.5 (0.5 - 1)^2 + 0.5 (-0.25 + 1)^2, and 0.5 (-0.25 - 0)^2
    assert loss.discriminator_loss(MeanD(), real, fake).item() == pytest.approx(
        0.5 * 0.25 + 0.5 * 0.5625)
    assert loss.generator_loss(MeanD(), fake).item() == pytest.approx(0.5 * 0.0625)


def test_wgan_asks_for_five_critic_steps(registry, tiny_recipe) -> None:
    from ganforge.recipe import load_recipe

    recipe = load_recipe(tiny_recipe, registry, ["loss.use=wgan"])
    assert recipe.warnings == ("[loss] 'ganforge:wgan' needs run.d_steps >= 5 (WGAN trains "
                               "the critic 5 times per G step)",)
    assert load_recipe(tiny_recipe, registry, ["loss.use=wgan", "run.d_steps=5"]).warnings == ()


@pytest.mark.parametrize(("name", "params", "cls"), [
    ("adamw", {"weight_decay": 0.1}, torch.optim.AdamW),
    ("rmsprop", {}, torch.optim.RMSprop),
    ("sgd", {"momentum": 0.9, "nesterov": True}, torch.optim.SGD),
])
def test_optimizers_build_what_they_say(registry, name: str, params: dict, cls: type) -> None:
    weight = nn.Parameter(torch.ones(3))
    optimizer = registry.create("optimizer", name, params).build([weight], torch.device("cpu"))
    assert isinstance(optimizer, cls)
    group = optimizer.param_groups[0]
    for key, value in params.items():
        assert group[key] == value
    if name == "rmsprop":
        assert group["lr"] == 5e-5  # the original WGAN's


def test_nesterov_without_momentum_is_refused(registry) -> None:
    with pytest.raises(RecipeError, match="'nesterov' needs momentum > 0"):
        registry.structure("optimizer", "sgd", {"nesterov": True}, "$.optimizer.generator")


def test_relativistic_losses(registry) -> None:
    import torch.nn.functional as F

    real, fake = torch.tensor([[0.5], [0.1]]), torch.tensor([[-0.2], [0.3]])
    r, f = real.flatten(), fake.flatten()
    D = MeanD()
    average = registry.create("loss", "relativistic")
    expected_d = F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()
    assert average.discriminator_loss(D, real, fake).item() == pytest.approx(expected_d.item())
    expected_g = F.softplus(-(f - r.mean())).mean() + F.softplus(r - f.mean()).mean()
    assert average.generator_loss(D, fake, real=real).item() == pytest.approx(expected_g.item())
    pairwise = registry.create("loss", "relativistic", {"mode": "pairwise"})
    assert pairwise.discriminator_loss(D, real, fake).item() == pytest.approx(
        F.softplus(-(r - f)).mean().item())
    assert pairwise.generator_loss(D, fake, real=real).item() == pytest.approx(
        F.softplus(-(f - r)).mean().item())


def test_the_step_hands_a_relativistic_loss_the_real_batch(registry, tiny_recipe) -> None:
    """G's update receives the real batch of the step's last D update."""
    from ganforge.recipe import load_recipe
    from ganforge.training.assembly import assemble
    from ganforge.training.step import GANStep

    recipe = load_recipe(tiny_recipe, registry, ["loss.use=relativistic", "run.d_steps=2"])
    x = assemble(recipe, registry, "cpu")
    seen = []
    original = x.loss.generator_loss

    def spy(discriminator, fake, **kwargs):
        seen.append(kwargs["real"])
        return original(discriminator, fake, **kwargs)

    step = GANStep(x, torch.Generator().manual_seed(0))  # sees the loss's signature
    x.loss.generator_loss = spy
    batches = iter([torch.zeros(8, 3, 32, 32), torch.ones(8, 3, 32, 32)])
    step(lambda: next(batches), 1)
    assert len(seen) == 1 and torch.equal(seen[0], torch.ones(8, 3, 32, 32))
