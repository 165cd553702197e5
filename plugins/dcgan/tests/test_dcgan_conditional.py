"""The conditional DCGAN (``conditional = true``): labels concatenated at the input, as in
the paper's MNIST code; ``conditional = false`` keeps the unconditional networks exactly."""

from __future__ import annotations

import pytest
import torch
from ganforge_dcgan.audit import GUIDELINES, audit, audit_discriminator, audit_generator
from torch import nn

from ganforge import ImageSpec, is_conditional
from ganforge.errors import UsageError

CLASSES = 10
#: The quickstart's settings: 32x32 digits, 1 channel, 10 classes, width 32, latent 100.
QUICK_SPEC = ImageSpec(channels=1, size=32, classes=CLASSES)
QUICK_G = {"width": 32, "latent_dim": 100}
QUICK_D = {"width": 32}
#: The paper's LSUN model: 64x64x3, width 128.
LSUN_SPEC = ImageSpec(channels=3, size=64, classes=CLASSES)
LSUN_G = {"width": 128, "latent_dim": 100}
LSUN_D = {"width": 128}

# Regression pins of the unconditional networks, measured on the code as it was before
# ``conditional`` existed (ganforge_dcgan at the commit before this change: sum of
# ``p.numel()`` and ``[(k, tuple(v.shape)) for k, v in state_dict().items()]``), so that
# checkpoints written then still load.
PINNED_COUNTS = {
    ("quickstart", "generator"): 369_600,
    ("quickstart", "discriminator"): 166_784,
    ("lsun", "generator"): 12_658_432,
    ("lsun", "discriminator"): 11_036_160,
}
PINNED_G_STATE = [
    ("main.0.weight", (100, 128, 4, 4)),
    ("main.1.weight", (128,)), ("main.1.bias", (128,)), ("main.1.running_mean", (128,)),
    ("main.1.running_var", (128,)), ("main.1.num_batches_tracked", ()),
    ("main.3.weight", (128, 64, 4, 4)),
    ("main.4.weight", (64,)), ("main.4.bias", (64,)), ("main.4.running_mean", (64,)),
    ("main.4.running_var", (64,)), ("main.4.num_batches_tracked", ()),
    ("main.6.weight", (64, 32, 4, 4)),
    ("main.7.weight", (32,)), ("main.7.bias", (32,)), ("main.7.running_mean", (32,)),
    ("main.7.running_var", (32,)), ("main.7.num_batches_tracked", ()),
    ("main.9.weight", (32, 1, 4, 4)),
]  # fmt: skip
PINNED_D_STATE = [
    ("main.0.weight", (32, 1, 4, 4)),
    ("main.2.weight", (64, 32, 4, 4)),
    ("main.3.weight", (64,)), ("main.3.bias", (64,)), ("main.3.running_mean", (64,)),
    ("main.3.running_var", (64,)), ("main.3.num_batches_tracked", ()),
    ("main.5.weight", (128, 64, 4, 4)),
    ("main.6.weight", (128,)), ("main.6.bias", (128,)), ("main.6.running_mean", (128,)),
    ("main.6.running_var", (128,)), ("main.6.num_batches_tracked", ()),
    ("main.8.weight", (1, 128, 4, 4)),
]  # fmt: skip

SETTINGS = {"quickstart": (QUICK_SPEC, QUICK_G, QUICK_D), "lsun": (LSUN_SPEC, LSUN_G, LSUN_D)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def state_shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def networks(plugins, conditional: bool, spec: ImageSpec = QUICK_SPEC,
             g: dict | None = None, d: dict | None = None):
    registry = plugins.registry
    generator = registry.create("generator", "dcgan",
                                {**(QUICK_G if g is None else g), "conditional": conditional},
                                image_spec=spec)
    discriminator = registry.create("discriminator", "dcgan",
                                    {**(QUICK_D if d is None else d), "conditional": conditional},
                                    image_spec=spec)
    return generator, discriminator


def latents(generator, n: int, seed: int = 0) -> torch.Tensor:
    return generator.sample_latent(n, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ structure and counts


@pytest.mark.parametrize("setting", ["quickstart", "lsun"])
def test_unconditional_networks_are_exactly_the_old_ones(plugins, setting: str) -> None:
    spec, g_params, d_params = SETTINGS[setting]
    for spec_used in (spec, ImageSpec(spec.channels, spec.size)):  # classes or none
        generator, discriminator = networks(plugins, False, spec_used, g_params, d_params)
        assert count(generator) == PINNED_COUNTS[(setting, "generator")]
        assert count(discriminator) == PINNED_COUNTS[(setting, "discriminator")]
        assert not is_conditional(generator) and not is_conditional(discriminator)
    if setting == "quickstart":
        assert state_shapes(generator) == PINNED_G_STATE
        assert state_shapes(discriminator) == PINNED_D_STATE


def test_conditional_false_is_the_default(plugins) -> None:
    registry = plugins.registry
    generator = registry.create("generator", "dcgan", QUICK_G, image_spec=QUICK_SPEC)
    discriminator = registry.create("discriminator", "dcgan", QUICK_D, image_spec=QUICK_SPEC)
    assert generator.params.conditional is False and discriminator.params.conditional is False
    assert state_shapes(generator) == PINNED_G_STATE
    assert state_shapes(discriminator) == PINNED_D_STATE


@pytest.mark.parametrize("setting", ["quickstart", "lsun"])
def test_conditional_adds_only_the_label_input_weights(plugins, setting: str) -> None:
    spec, g_params, d_params = SETTINGS[setting]
    generator, discriminator = networks(plugins, True, spec, g_params, d_params)
    assert is_conditional(generator) and is_conditional(discriminator)
    assert generator.classes == discriminator.classes == CLASSES
    steps = {32: 3, 64: 4}[spec.size]
    # G's first transposed conv maps latent_dim + classes channels to width * 2^(steps-1)
    # maps with 4x4 kernels; D's first conv maps channels + classes to width with 4x4.
    g_first = g_params["width"] * 2 ** (steps - 1)
    g_extra = CLASSES * g_first * 4 * 4
    d_extra = CLASSES * d_params["width"] * 4 * 4
    assert count(generator) == PINNED_COUNTS[(setting, "generator")] + g_extra
    assert count(discriminator) == PINNED_COUNTS[(setting, "discriminator")] + d_extra
    assert generator.main[0].in_channels == g_params["latent_dim"] + CLASSES
    assert discriminator.main[0].in_channels == spec.channels + CLASSES


def test_conditional_state_dict_differs_only_in_the_first_weight(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    g_expected = [("main.0.weight", (100 + CLASSES, 128, 4, 4)), *PINNED_G_STATE[1:]]
    d_expected = [("main.0.weight", (32, 1 + CLASSES, 4, 4)), *PINNED_D_STATE[1:]]
    assert state_shapes(generator) == g_expected
    assert state_shapes(discriminator) == d_expected


def test_label_weights_start_from_the_papers_init(plugins) -> None:
    torch.manual_seed(0)
    generator, discriminator = networks(plugins, True, LSUN_SPEC, LSUN_G, LSUN_D)
    for weights in (generator.main[0].weight[100:], discriminator.main[0].weight[:, 3:]):
        assert abs(weights.std().item() - 0.02) < 0.002
        assert abs(weights.mean().item()) < 0.002


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_conditional_without_classes_is_a_one_line_usage_error(plugins, kind: str) -> None:
    params = QUICK_G if kind == "generator" else QUICK_D
    with pytest.raises(UsageError) as caught:
        plugins.registry.create(kind, "dcgan", {**params, "conditional": True},
                                image_spec=ImageSpec(1, 32))
    message = str(caught.value)
    assert message == (f"{kind}: conditional = true needs a dataset with classes; "
                       "dataset gives none")
    assert "\n" not in message


# ---------------------------------------------------------------------------- forward


def test_generator_takes_indices_or_one_hot_weights_alike(plugins) -> None:
    generator, _ = networks(plugins, True)
    generator.eval()
    z = latents(generator, 2 * CLASSES)
    y = torch.arange(2 * CLASSES) % CLASSES
    with torch.no_grad():
        by_index = generator(z, y)
        by_weights = generator(z, nn.functional.one_hot(y, CLASSES).float())
    assert by_index.shape == (2 * CLASSES, 1, 32, 32)
    assert by_index.min() >= -1 and by_index.max() <= 1
    torch.testing.assert_close(by_index, by_weights, rtol=0, atol=0)


def test_generator_train_mode_indices_and_weights_agree(plugins) -> None:
    generator, _ = networks(plugins, True)
    z = latents(generator, 16)
    y = torch.arange(16) % CLASSES
    torch.testing.assert_close(generator(z, y),
                               generator(z, nn.functional.one_hot(y, CLASSES).float()))


def test_generator_images_differ_between_classes_for_the_same_z(plugins) -> None:
    generator, _ = networks(plugins, True)
    generator.eval()
    z = latents(generator, 4)
    with torch.no_grad():
        images = [generator(z, torch.full((4,), c)) for c in range(CLASSES)]
    for a in range(CLASSES):
        for b in range(a + 1, CLASSES):
            assert (images[a] - images[b]).abs().max() > 1e-4, (a, b)


def test_generator_walks_between_classes_with_mixed_weights(plugins) -> None:
    generator, _ = networks(plugins, True)
    generator.eval()
    z = latents(generator, 1).expand(5, -1)
    steps = torch.linspace(0, 1, 5)
    weights = torch.zeros(5, CLASSES)
    weights[:, 3], weights[:, 7] = 1 - steps, steps
    with torch.no_grad():
        walk = generator(z, weights)
        ends = generator(z[:2], torch.tensor([3, 7]))
    torch.testing.assert_close(walk[0], ends[0])
    torch.testing.assert_close(walk[-1], ends[1])
    assert (walk[2] - walk[0]).abs().max() > 1e-4 and (walk[2] - walk[-1]).abs().max() > 1e-4


def test_discriminator_gives_one_logit_per_image_and_reads_the_label(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    discriminator.eval()
    images = torch.rand(6, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    with torch.no_grad():
        logits = discriminator(images, y)
        other = discriminator(images, (y + 1) % CLASSES)
        weighted = discriminator(images, nn.functional.one_hot(y, CLASSES).float())
    assert logits.shape == (6,) and logits.dtype == torch.float32
    assert not torch.allclose(logits, other)
    torch.testing.assert_close(logits, weighted, rtol=0, atol=0)


def test_gradients_flow_into_the_label_path(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    z = latents(generator, 8)
    y = torch.arange(8) % CLASSES
    weights = nn.functional.one_hot(y, CLASSES).float().requires_grad_(True)
    images = generator(z, weights)
    logits = discriminator(images, y)
    logits.square().sum().backward()
    assert weights.grad is not None and weights.grad.abs().sum() > 0
    g_label_rows = generator.main[0].weight.grad[100:]  # the rows fed by the label
    d_label_maps = discriminator.main[0].weight.grad[:, 1:]  # the label input channels
    assert g_label_rows.abs().sum() > 0
    assert d_label_maps.abs().sum() > 0


def test_misuse_of_labels_is_refused(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    z = latents(generator, 3)
    images = torch.zeros(3, 1, 32, 32)
    with pytest.raises(TypeError, match="generator: conditional"):
        generator(z)
    with pytest.raises(TypeError, match="discriminator: conditional"):
        discriminator(images)
    with pytest.raises(ValueError, match=r"class weights must have shape \(3, 10\)"):
        generator(z, torch.zeros(3, 9))
    with pytest.raises(ValueError, match=r"class indices must have shape \(3,\)"):
        discriminator(images, torch.zeros(3, 1, dtype=torch.int64))
    plain_g, plain_d = networks(plugins, False)
    with pytest.raises(TypeError, match="generator: unconditional"):
        plain_g(z, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="discriminator: unconditional"):
        plain_d(images, torch.zeros(3, dtype=torch.int64))
    assert plain_g(z, None).shape == (3, 1, 32, 32)  # None: no labels


# ------------------------------------------------------------------------------- audit


def check(plugins, generator, discriminator) -> dict:
    batches = plugins.hook.ganforge_check(generator=generator, discriminator=discriminator,
                                          experiment=None, recipe=None)
    return {(r.network, r.guideline): r for batch in batches if batch for r in batch}


@pytest.mark.parametrize("conditional", [False, True])
def test_ganforge_check_passes_the_dcgan_guidelines(plugins, conditional: bool) -> None:
    generator, discriminator = networks(plugins, conditional)
    results = check(plugins, generator, discriminator)
    assert len(results) == 2 * len(GUIDELINES)
    failed = {key: r.detail for key, r in results.items() if not r.passed}
    assert failed == {}
    # The label concatenation adds no layer: the structure reads as the unconditional one.
    assert "3 of 3 layers" in results[("generator", "batchnorm")].detail
    assert "2 of 2 hidden layers" in results[("discriminator", "batchnorm")].detail


@pytest.mark.parametrize(("g_conditional", "d_conditional"), [(True, False), (False, True)])
def test_ganforge_check_on_a_pair_with_one_conditional_network(
        plugins, g_conditional: bool, d_conditional: bool) -> None:
    generator, _ = networks(plugins, g_conditional)
    _, discriminator = networks(plugins, d_conditional)
    results = check(plugins, generator, discriminator)
    assert len(results) == 2 * len(GUIDELINES)
    assert all(r.passed for r in results.values()), [r.detail for r in results.values()]


def test_ganforge_check_leaves_conditional_networks_as_found(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    generator.train()
    discriminator.train()
    states = [{k: v.clone() for k, v in net.state_dict().items()}
              for net in (generator, discriminator)]
    check(plugins, generator, discriminator)
    for net, state in zip((generator, discriminator), states, strict=True):
        assert all(m.training for m in net.modules())
        for key, value in net.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_audit_functions_take_labels_for_conditional_networks(plugins) -> None:
    generator, discriminator = networks(plugins, True)
    z = latents(generator, 2)
    y = torch.tensor([0, 9])
    images = torch.zeros(2, 1, 32, 32)
    assert all(r.passed for r in audit(generator, discriminator, z, images, y))
    assert all(r.passed for r in audit_generator(generator, z, y))
    with pytest.raises(ValueError, match="generator is conditional"):
        audit_generator(generator, z)
    with pytest.raises(ValueError, match="discriminator is conditional"):
        audit_discriminator(discriminator, images)
    # labels given for a pair of which only D is conditional reach D alone
    plain_g, _ = networks(plugins, False)
    assert all(r.passed for r in audit(plain_g, discriminator, z, images, y))
