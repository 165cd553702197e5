"""The contract kit (ganforge.testing) catches broken components, each with a message that
names the component and the check, and passes good ones."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import attrs
import pytest
import torch
import torch.nn.functional as F

from ganforge import hookimpl, param
from ganforge.interfaces import ComponentState, Loss, Optimizer, Scheduler
from ganforge.testing import (
    TinyDiscriminator,
    TinyGenerator,
    check_component,
    check_plugin,
    check_training,
    load_plugin,
    plugin_registry,
    run_checks,
)

#: Fast settings for checks that are not about image specs, compile or training.
FAST = {"sizes": (16,), "channels": (3,), "train": False, "skip": ("compile",)}


# -- broken (and good) components --------------------------------------------------------


class RangeGenerator(TinyGenerator):
    """Its images leave [-1, 1]."""

    def forward(self, z, y=None):
        return 2 * super().forward(z, y)


class WideDiscriminator(TinyDiscriminator):
    """Returns (N, 1) logits."""

    def forward(self, images, y=None):
        return super().forward(images, y).unsqueeze(1)


class NoisyInitGenerator(TinyGenerator):
    """Initial weights from a generator seeded by the OS, not from torch's global RNG."""

    def __init__(self, params, image_spec=None):
        super().__init__(params, image_spec)
        seed = int.from_bytes(os.urandom(4), "little")
        with torch.no_grad():
            weight = self.net[0].weight
            weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)))


class SizeCrashGenerator(TinyGenerator):
    """Refuses 24x24 with an IndexError instead of a ganforge error."""

    def __init__(self, params, image_spec=None):
        if image_spec is not None and image_spec.size == 24:
            raise IndexError("list index out of range")
        super().__init__(params, image_spec)


class ViewDiscriminator(TinyDiscriminator):
    """Uses .view on its input, which fails on channels_last images."""

    def forward(self, images, y=None):
        flat = images.view(images.shape[0], -1)
        return self.head(self.body[2](self.body[1](flat))).flatten()


class LabelMixupGenerator(TinyGenerator):
    """Conditional, but float class weights are read as other classes than indices."""

    def forward(self, z, y=None):
        if y is not None and y.is_floating_point():
            y = y.flip(1)
        return super().forward(z, y)


class NoCompileGenerator(TinyGenerator):
    """Opts out of the compile check."""

    supports_compile = False


class UndocumentedLoss(Loss):
    """A Params field without a doc."""

    @attrs.frozen
    class Params:
        weight: float = 1.0

    def discriminator_loss(self, discriminator, real, fake):
        return F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator, fake):
        return F.softplus(-discriminator(fake)).mean()


class LaxValidatorLoss(UndocumentedLoss):
    """A validator that lets everything through."""

    @attrs.frozen
    class Params:
        weight: float = param(1.0, "weight", validator=lambda *_: None)


class VectorLoss(Loss):
    """Returns one loss per image instead of a scalar."""

    @attrs.frozen
    class Params:
        """None."""

    def discriminator_loss(self, discriminator, real, fake):
        return F.softplus(-discriminator(real)) + F.softplus(discriminator(fake))

    def generator_loss(self, discriminator, fake):
        return F.softplus(-discriminator(fake))


class CountingLoss(Loss):
    """Stateful: counts its steps and weighs the fake term by the count; ``round_trips``
    says whether load_component_state restores the count."""

    round_trips = True

    @attrs.frozen
    class Params:
        rate: float = param(0.1, "weight added per step")

    def __init__(self, params):
        super().__init__(params)
        self.count = torch.zeros(())

    def on_step(self, step):
        self.count = self.count + 1

    def discriminator_loss(self, discriminator, real, fake):
        weight = 1 + self.params.rate * self.count
        return F.softplus(-discriminator(real)).mean() + \
            weight * F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator, fake):
        return F.softplus(-discriminator(fake)).mean()

    def component_state(self):
        return ComponentState({"count": self.count.clone()})

    def load_component_state(self, state):
        if self.round_trips:
            self.count = state.tensors["count"].clone()


class ForgetfulLoss(CountingLoss):
    """Its state does not round-trip: load_component_state ignores it."""

    round_trips = False


class HiddenStateLoss(CountingLoss):
    """Keeps its count but never hands it to the checkpoint."""

    def component_state(self):
        return None


class ExplodingLoss(VectorLoss):
    """Its constructor raises."""

    def __init__(self, params):
        raise KeyError("missing buffer")


class StuckOptimizer(Optimizer):
    """SGD at learning rate 0: a step changes nothing."""

    @attrs.frozen
    class Params:
        """None."""

    def build(self, parameters, device):
        return torch.optim.SGD(parameters, lr=0.0)


class HiddenStateSchedule(Scheduler):
    """A factor that depends on how often it was asked, not on the step."""

    @attrs.frozen
    class Params:
        """None."""

    def __init__(self, params):
        super().__init__(params)
        self.calls = 0

    def factor(self, step, total):
        self.calls += 1
        return 1.0 / self.calls


def _make_plugin() -> types.ModuleType:
    plugin = types.ModuleType("broken_kit_plugin")

    @hookimpl
    def ganforge_register(registry):
        for kind, name, cls in [
            ("generator", "range", RangeGenerator), ("discriminator", "wide", WideDiscriminator),
            ("generator", "noisy_init", NoisyInitGenerator),
            ("generator", "size_crash", SizeCrashGenerator),
            ("discriminator", "view", ViewDiscriminator),
            ("generator", "label_mixup", LabelMixupGenerator),
            ("generator", "no_compile", NoCompileGenerator),
            ("generator", "tiny", TinyGenerator), ("discriminator", "tiny", TinyDiscriminator),
            ("loss", "undocumented", UndocumentedLoss), ("loss", "lax", LaxValidatorLoss),
            ("loss", "vector", VectorLoss), ("loss", "counting", CountingLoss),
            ("loss", "forgetful", ForgetfulLoss), ("loss", "hidden_state", HiddenStateLoss),
            ("loss", "exploding", ExplodingLoss), ("optimizer", "stuck", StuckOptimizer),
            ("scheduler", "hidden_state", HiddenStateSchedule),
        ]:
            registry.register(kind, name, cls)

    plugin.ganforge_register = ganforge_register
    return plugin


@pytest.fixture(scope="module")
def registry():
    return plugin_registry("kit", _make_plugin())


def _fails(registry, kind: str, name: str, check: str, **options) -> str:
    """Check the component and return the failure message, which must name it and the
    check."""
    with pytest.raises(AssertionError) as caught:
        check_component(kind, f"kit:{name}", registry=registry, **options)
    message = str(caught.value)
    assert f"{kind} 'kit:{name}' [{check}]:" in message, message
    return message


# -- each broken component is caught by its check ---------------------------------------------


def test_images_outside_minus_one_one(registry) -> None:
    message = _fails(registry, "generator", "range", "output", **FAST)
    assert "leave [-1, 1]" in message


def test_discriminator_returning_n_by_1(registry) -> None:
    message = _fails(registry, "discriminator", "wide", "output", **FAST)
    assert "output shape (4, 1), expected (4,)" in message


def test_params_field_without_doc(registry) -> None:
    message = _fails(registry, "loss", "undocumented", "params", train=False)
    assert "without a doc: weight" in message


def test_validator_accepting_everything(registry) -> None:
    message = _fails(registry, "loss", "lax", "validators", train=False)
    assert "field 'weight' accepted every obviously bad value" in message


def test_non_deterministic_init(registry) -> None:
    message = _fails(registry, "generator", "noisy_init", "determinism", **FAST)
    assert "net.0.weight" in message


def test_loss_returning_a_vector(registry) -> None:
    message = _fails(registry, "loss", "vector", "loss_values", train=False)
    assert "shape (4,), not a scalar" in message


def test_state_that_does_not_round_trip(registry) -> None:
    message = _fails(registry, "loss", "forgetful", "component_state", train=False)
    assert "does not round-trip" in message


def test_state_kept_outside_the_checkpoint_breaks_the_resume(registry) -> None:
    message = _fails(registry, "loss", "hidden_state", "training")
    assert "4 steps straight and 2 + resume 2 end with different" in message


def test_a_constructor_that_raises_fails_checks_not_the_kit(registry) -> None:
    report = run_checks("loss", "kit:exploding", registry=registry)
    assert report.failures["loss_values"] == "raised KeyError: 'missing buffer'"
    assert "training" in report.failures and "params" in report.passed


def test_refusing_a_spec_with_a_crash(registry) -> None:
    message = _fails(registry, "generator", "size_crash", "specs", sizes=(16, 24),
                     channels=(3,), train=False)
    assert "building for 3x24x24" in message and "IndexError" in message


def test_view_on_channels_last_input(registry) -> None:
    message = _fails(registry, "discriminator", "view", "channels_last", **FAST)
    assert "channels_last" in message


def test_float_class_weights_disagreeing_with_indices(registry) -> None:
    message = _fails(registry, "generator", "label_mixup", "labels",
                     params={"conditional": True}, **FAST)
    assert "one-hot float class weights give other images" in message


def test_optimizer_step_changing_nothing(registry) -> None:
    message = _fails(registry, "optimizer", "stuck", "optimizer_step", train=False)
    assert "unchanged" in message


def test_schedule_with_hidden_state(registry) -> None:
    message = _fails(registry, "scheduler", "hidden_state", "determinism", train=False)
    assert "in reverse order" in message


def test_every_failed_check_is_listed_in_one_error(registry) -> None:
    report = run_checks("generator", "kit:range", registry=registry, **FAST)
    assert "output" in report.failures and not report.ok
    assert report.message().startswith("generator 'kit:range' failed")
    small = types.ModuleType("small_kit_plugin")

    @hookimpl
    def ganforge_register(registry):
        registry.register("generator", "range", RangeGenerator)
        registry.register("discriminator", "wide", WideDiscriminator)
        registry.register("generator", "tiny", TinyGenerator)
        registry.register("loss", "undocumented", UndocumentedLoss)
        registry.register("loss", "vector", VectorLoss)
        registry.register("loss", "counting", CountingLoss)

    small.ganforge_register = ganforge_register
    plugin_error = pytest.raises(AssertionError, check_plugin, "small",
                                 registry=plugin_registry("small", small), **FAST).value
    text = str(plugin_error)
    assert text.startswith("plugin 'small': ")
    for line in ("generator 'small:range' [output]", "discriminator 'small:wide' [output]",
                 "loss 'small:undocumented' [params]", "loss 'small:vector' [loss_values]"):
        assert line in text
    assert "small:tiny" not in text and "small:counting" not in text  # the good ones pass


# -- good components pass; opt-outs and skips ------------------------------------------------


@pytest.mark.parametrize(("kind", "conditional"), [("generator", False),
                                                  ("discriminator", True)])
def test_good_networks_pass_the_whole_contract(registry, kind, conditional) -> None:
    report = check_component(kind, "kit:tiny", registry=registry,
                             params={"conditional": conditional})
    assert {"specs", "output", "bf16", "channels_last", "compile", "determinism",
            "state_dict", "gradients", "training"} <= set(report.passed)
    assert ("labels" in report.passed) == conditional


def test_a_stateful_loss_that_round_trips_passes(registry) -> None:
    report = check_component("loss", "kit:counting", registry=registry)
    assert {"component_state", "training"} <= set(report.passed)


def test_compile_opt_out(registry) -> None:
    report = check_component("generator", "kit:no_compile", registry=registry,
                             **{**FAST, "skip": ()})
    assert "supports_compile = False" in report.skipped["compile"]


def test_skipped_checks_and_required_params(registry) -> None:
    report = check_component("generator", "kit:range", registry=registry,
                             **{**FAST, "skip": ("output", "bf16")})
    assert report.skipped["output"] == "skipped by the caller"
    folder = check_component("dataset", "image_folder", registry=registry)
    assert "pass params=" in folder.skipped["items"] and folder.passed == ["params"]


def test_check_training_alone(registry) -> None:
    check_training({"loss": {"use": "kit:counting"}}, registry=registry)
    with pytest.raises(AssertionError, match=r"recipe 'table' \[training\]: 4 steps "):
        check_training({"loss": {"use": "kit:hidden_state"}}, registry=registry)


def test_rng_state_of_the_caller_is_left_alone(registry) -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_component("optimizer", "adam", registry=registry, train=False)
    assert torch.equal(torch.rand(3), expected)


# -- plugin_registry ---------------------------------------------------------------------------

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "ganforge-lsgan"


def test_plugin_registry_loads_an_installed_plugin_once() -> None:
    plugins = load_plugin("dcgan", "ganforge_dcgan.plugin")
    records = [r for r in plugins.records if r.name.startswith("dcgan")]
    assert [(r.name, r.status) for r in records] == [("dcgan", "loaded")]
    assert plugins.registry.entry("generator", "dcgan:dcgan").plugin == "dcgan"


def test_plugin_registry_loads_an_uninstalled_plugin(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "ganforge_lsgan", raising=False)
    registry = plugin_registry("lsgan", "ganforge_lsgan")
    reports = check_plugin("lsgan", registry=registry)
    assert [r.name for r in reports] == ["lsgan:least_squares"]
    assert "training" in reports[0].passed


def test_a_broken_plugin_fails_plugin_registry() -> None:
    plugin = types.ModuleType("raising_plugin")

    @hookimpl
    def ganforge_register(registry):
        raise RuntimeError("boom")

    plugin.ganforge_register = ganforge_register
    with pytest.raises(AssertionError, match="plugin 'raising' could not be loaded: .*boom"):
        plugin_registry("raising", plugin)
