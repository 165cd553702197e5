"""The auxiliary-classifier head of the DCGAN discriminator (ACGAN, Odena et al. 2017)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from ganforge_dcgan import DCGANDiscriminator
from torch import nn

from ganforge import ImageSpec
from ganforge.errors import RecipeError, UsageError
from ganforge.interfaces import Requirement
from ganforge.recipe import build_recipe

CLASSES = 10
SPEC = ImageSpec(channels=1, size=32, classes=CLASSES)  # the quickstart's digits


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make(plugins, params: dict, spec: ImageSpec = SPEC, seed: int = 0) -> DCGANDiscriminator:
    torch.manual_seed(seed)
    return plugins.registry.create("discriminator", "dcgan", {"width": 32, **params},
                                   image_spec=spec)


class FakeRecipe:
    """Just enough of a resolved recipe for ``requirements``: ``recipe["loss"].short``."""

    def __init__(self, loss: str) -> None:
        self.loss = SimpleNamespace(short=loss, name=f"plugin:{loss}")

    def __getitem__(self, table: str) -> SimpleNamespace:
        assert table == "loss", table
        return self.loss


def test_the_head_outputs_the_adversarial_logit_then_the_class_logits(plugins) -> None:
    plain, aux = make(plugins, {}), make(plugins, {"aux_classifier": True})
    assert not plain.aux_classifier and aux.aux_classifier
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    for mode in (True, False):
        aux.train(mode)
        out = aux(images)
        assert out.shape == (5, 1 + CLASSES) and out.dtype == torch.float32
    assert plain(images).shape == (5,)
    # Column 0 is the one-logit D's output: same body, the head's first output channel.
    with torch.no_grad():
        state = plain.state_dict()
        head = f"main.{len(plain.main) - 1}.weight"  # the logit layer
        aux_state = aux.state_dict()
        aux_state.update({k: v for k, v in state.items() if k != head})
        aux_state[head][:1] = state[head]
        aux.load_state_dict(aux_state)
        plain.eval(), aux.eval()
        assert torch.allclose(aux(images)[:, 0], plain(images), atol=1e-6)


def test_the_head_adds_classes_times_last_channels_times_16_weights(plugins) -> None:
    plain, aux = make(plugins, {}), make(plugins, {"aux_classifier": True})
    last = plain.main[-1].in_channels
    assert last == 128  # width 32 at 32x32: 32 -> 64 -> 128
    assert count(aux) == count(plain) + CLASSES * last * 16 == 166_784 + 20_480
    assert plain.main[-1].out_channels == 1 and aux.main[-1].out_channels == 1 + CLASSES
    # Only the logit layer's weight changes shape; the keys are the same.
    plain_shapes = {k: v.shape for k, v in plain.state_dict().items()}
    aux_shapes = {k: v.shape for k, v in aux.state_dict().items()}
    assert plain_shapes.keys() == aux_shapes.keys()
    changed = [k for k in plain_shapes if plain_shapes[k] != aux_shapes[k]]
    assert changed == [f"main.{len(plain.main) - 1}.weight"]
    # The head's weights are the paper's init too.
    assert abs(aux.main[-1].weight.std().item() - 0.02) < 0.002


def test_aux_classifier_false_is_the_default_network(plugins) -> None:
    default, explicit = make(plugins, {}), make(plugins, {"aux_classifier": False})
    assert count(default) == count(explicit)
    assert repr(default) == repr(explicit)
    for (key, a), b in zip(default.state_dict().items(), explicit.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key


def test_a_dataset_without_classes_is_refused_in_one_line(plugins) -> None:
    with pytest.raises(UsageError) as caught:
        make(plugins, {"aux_classifier": True}, spec=ImageSpec(1, 32))
    message = str(caught.value)
    assert message == ("discriminator: aux_classifier = true needs a dataset with classes; "
                       "dataset gives none")
    assert not isinstance(caught.value, RecipeError)


@pytest.mark.parametrize("norm", ["batch", "spectral", "layer", "none"])
def test_the_head_trains_with_every_norm(plugins, norm: str) -> None:
    aux = make(plugins, {"aux_classifier": True, "norm": norm})
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    labels = torch.arange(4) % CLASSES
    out = aux(images)
    loss = (nn.functional.binary_cross_entropy_with_logits(out[:, 0], torch.ones(4))
            + nn.functional.cross_entropy(out[:, 1:], labels))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in aux.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert aux(images).shape == (4, 1 + CLASSES)


def test_the_head_combines_with_conditional(plugins) -> None:
    aux = make(plugins, {"aux_classifier": True, "conditional": True})
    assert aux.conditional and aux.aux_classifier and aux.classes == CLASSES
    images, labels = torch.rand(3, 1, 32, 32), torch.tensor([0, 4, 9])
    assert aux(images, labels).shape == (3, 1 + CLASSES)
    with pytest.raises(TypeError, match="second argument"):
        aux(images)


def test_the_head_compiles(plugins) -> None:
    torch._dynamo.reset()
    try:
        aux = make(plugins, {"aux_classifier": True, "width": 8})
        images = torch.rand(4, 1, 32, 32) * 2 - 1
        aux.eval()
        compiled = torch.compile(aux, backend="aot_eager")
        assert torch.allclose(compiled(images), aux(images), atol=1e-5)
    finally:
        torch._dynamo.reset()


# ------------------------------------------------------------------ the recipe requirement

def test_the_head_requires_the_aux_classifier_loss() -> None:
    params = DCGANDiscriminator.Params(aux_classifier=True)
    [needed] = DCGANDiscriminator.requirements(params, FakeRecipe("bce"))
    assert isinstance(needed, Requirement)
    assert not needed.met and not needed.warn  # refuses the recipe, not a warning
    assert needed.message("discriminator", "dcgan:dcgan") == (
        "[discriminator] 'dcgan:dcgan' needs loss = 'aux_classifier' (the head's class "
        "logits need its classification term)")
    [needed] = DCGANDiscriminator.requirements(params, FakeRecipe("aux_classifier"))
    assert needed.met


def test_without_the_head_nothing_is_required() -> None:
    params = DCGANDiscriminator.Params()
    assert DCGANDiscriminator.requirements(params, FakeRecipe("bce")) == []


def test_a_recipe_with_the_head_and_another_loss_is_refused(plugins) -> None:
    table = {"dataset": {"use": "synthetic", "image_size": 32, "channels": 1,
                         "classes": CLASSES},
             "generator": {"use": "dcgan"},
             "discriminator": {"use": "dcgan", "aux_classifier": True},
             "loss": {"use": "bce"}}
    with pytest.raises(RecipeError) as caught:
        build_recipe(table, plugins.registry)
    assert caught.value.problems == [(
        "$.discriminator",
        "[discriminator] 'dcgan:dcgan' needs loss = 'aux_classifier' (the head's class "
        "logits need its classification term)")]
    table["discriminator"]["aux_classifier"] = False
    assert build_recipe(table, plugins.registry)["discriminator"].params.aux_classifier is False


def test_the_audit_reads_the_head_as_the_logit_layer(plugins) -> None:
    registry = plugins.registry
    generator = registry.create("generator", "dcgan", {"width": 4}, image_spec=SPEC)
    discriminator = make(plugins, {"width": 4, "aux_classifier": True})
    batches = plugins.hook.ganforge_check(generator=generator, discriminator=discriminator,
                                          experiment=None, recipe=None)
    results = [r for batch in batches if batch for r in batch]
    assert len(results) == 12
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_the_head_trains_and_resumes_with_the_aux_classifier_loss(norm: str) -> None:
    from ganforge.testing import check_training, plugin_registry

    registry = plugin_registry("dcgan", "ganforge_dcgan.plugin")
    check_training({"dataset": {"use": "synthetic", "image_size": 32, "channels": 1,
                                "classes": 3},
                    "generator": {"use": "dcgan", "width": 8, "latent_dim": 16},
                    "discriminator": {"use": "dcgan", "width": 8, "aux_classifier": True,
                                      "norm": norm},
                    "loss": {"use": "aux_classifier"}}, registry=registry)
