"""The registry: registration rules, lookup, listing and creation."""

from __future__ import annotations

import attrs
import pytest
import torch

from ganforge import Loss, Registry
from ganforge.builtins.losses import BCELoss
from ganforge.errors import RecipeError, RegistrationError, UnknownComponentError


class HingeLoss(Loss):
    """A hinge loss used only by these tests."""

    @attrs.frozen
    class Params:
        margin: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def discriminator_loss(self, discriminator, real, fake):
        return torch.relu(self.params.margin - discriminator(real)).mean()

    def generator_loss(self, discriminator, fake):
        return -discriminator(fake).mean()


def test_register_get_list_create() -> None:
    registry = Registry()
    with registry.registering_as("tests"):
        registry.register("loss", "hinge", HingeLoss)
        registry.register("loss", "bce", BCELoss)
    assert registry.get("loss", "hinge") is HingeLoss
    assert [e.name for e in registry.list("loss")] == ["bce", "hinge"]
    assert [e.name for e in registry.list("loss", "h*")] == ["hinge"]
    assert registry.entry("loss", "hinge").origin == "tests"
    loss = registry.create("loss", "hinge", {"margin": 2.0})
    assert isinstance(loss, HingeLoss) and loss.params.margin == 2.0
    assert registry.create("loss", "hinge").params.margin == 1.0
    assert registry.create("loss", "hinge", HingeLoss.Params(3.0)).params.margin == 3.0
    assert ("loss", "hinge") in registry and ("loss", "nope") not in registry


def test_unknown_name_suggests() -> None:
    registry = Registry()
    registry.register("loss", "hinge", HingeLoss)
    with pytest.raises(UnknownComponentError, match="did you mean 'hinge'"):
        registry.get("loss", "hnige")
    with pytest.raises(UnknownComponentError, match="known: hinge"):
        registry.get("loss", "zzzzzz")
    with pytest.raises(UnknownComponentError, match="did you mean 'loss'"):
        registry.list("losss")


def test_duplicate_names_both_origins() -> None:
    registry = Registry()
    with registry.registering_as("plugin 'a' (dist-a 1.0)"):
        registry.register("loss", "hinge", HingeLoss)
    with pytest.raises(RegistrationError) as info, \
            registry.registering_as("plugin 'b' (dist-b 2.0)"):
        registry.register("loss", "hinge", BCELoss)
    assert "plugin 'a' (dist-a 1.0)" in str(info.value)
    assert "plugin 'b' (dist-b 2.0)" in str(info.value)
    assert registry.get("loss", "hinge") is HingeLoss


def test_failed_block_withdraws_its_registrations() -> None:
    registry = Registry()
    with pytest.raises(RuntimeError), registry.registering_as("half"):
        registry.register("loss", "hinge", HingeLoss)
        raise RuntimeError("plugin crashed half-way")
    assert ("loss", "hinge") not in registry


def test_non_components_refused() -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match="not a subclass"):
        registry.register("loss", "x", dict)
    with pytest.raises(RegistrationError, match="not a subclass"):
        registry.register("generator", "x", HingeLoss)
    with pytest.raises(RegistrationError, match="unknown kind"):
        registry.register("lozz", "x", HingeLoss)

    class NoParams(Loss):
        def discriminator_loss(self, d, r, f): ...
        def generator_loss(self, d, f): ...

    with pytest.raises(RegistrationError, match="frozen attrs class 'Params'"):
        registry.register("loss", "x", NoParams)

    class MutableParams(NoParams):
        @attrs.define
        class Params:
            a: int = 1

    with pytest.raises(RegistrationError, match="frozen attrs class 'Params'"):
        registry.register("loss", "x", MutableParams)


def test_create_reports_param_errors_with_paths() -> None:
    registry = Registry()
    registry.register("loss", "hinge", HingeLoss)
    with pytest.raises(RecipeError) as info:
        registry.create("loss", "hinge", {"margni": 1.0})
    assert info.value.problems == [("$.loss.margni", "unknown key, did you mean 'margin'?")]
    with pytest.raises(RecipeError) as info:
        registry.create("loss", "hinge", {"margin": -1.0})
    assert info.value.problems[0][0] == "$.loss.margin"
