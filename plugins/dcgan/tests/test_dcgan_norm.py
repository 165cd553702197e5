"""The ``norm`` key of the DCGAN networks: batch (the paper), spectral, layer and none, and
the old spelling ``batchnorm = false``."""

from __future__ import annotations

import pytest
import torch
from ganforge_dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge_dcgan.layers import OLD_SPELLING
from torch import nn
from torch.nn.utils import parametrize

from ganforge import ImageSpec
from ganforge.errors import RecipeError
from ganforge.nn.layers import NORMS, SpectralNorm
from ganforge.recipe import build_recipe
from ganforge.testing import check_component, plugin_registry

#: The quickstart recipe's networks (ganforge/recipes/quickstart.toml: digits, 1x32x32).
QUICKSTART = ImageSpec(channels=1, size=32, classes=10)
G_QUICK = {"latent_dim": 100, "width": 32}
D_QUICK = {"width": 32}

#: Parameters of the quickstart networks per norm. ``layer`` has BatchNorm's count (a
#: GroupNorm has the same 2 * C affine parameters); ``spectral`` and ``none`` trade them for
#: a bias (C) on every hidden convolution; spectral normalization adds buffers only.
QUICKSTART_COUNTS = {
    "batch": (369_600, 166_784),
    "layer": (369_600, 166_784),
    "spectral": (369_376, 166_592),
    "none": (369_376, 166_592),
}

#: Small networks for the contract kit, as in test_dcgan_contract.py.
SMALL = {"generator": {"latent_dim": 16, "width": 8}, "discriminator": {"width": 8}}
CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def build(plugins, kind: str, params: dict, spec: ImageSpec = QUICKSTART,
          seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    base = G_QUICK if kind == "generator" else D_QUICK
    return plugins.registry.create(kind, "dcgan", {**base, **params}, image_spec=spec)


def hidden(network: nn.Module) -> list[nn.Module]:
    """The convolutions BatchNorm follows in the paper's network."""
    convs = [m for m in network.main if isinstance(m, CONVS)]
    return convs[:-1] if isinstance(network, DCGANGenerator) else convs[1:-1]


@pytest.fixture(scope="module")
def registry():
    return plugin_registry("dcgan", "ganforge_dcgan.plugin")


# ------------------------------------------------------------------ params and compatibility

def test_norm_values_are_the_shared_ones() -> None:
    for cls in (DCGANGenerator, DCGANDiscriminator):
        assert cls.Params().norm == "batch"
        assert cls.Params().effective_norm == "batch"
        for norm in NORMS:
            assert cls.Params(norm=norm).effective_norm == norm


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_unknown_norm_is_refused(plugins, kind: str) -> None:
    with pytest.raises(RecipeError, match=rf"\$\.{kind}\.norm: 'norm' must be one of"):
        plugins.registry.create(kind, "dcgan", {"norm": "group"}, image_spec=QUICKSTART)


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_explicit_batch_norm_is_the_default_network(plugins, kind: str) -> None:
    default, explicit = build(plugins, kind, {}), build(plugins, kind, {"norm": "batch"})
    assert count(explicit) == count(default)
    assert shapes(explicit) == shapes(default)
    assert repr(explicit) == repr(default)
    for (key, a), b in zip(default.state_dict().items(), explicit.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key
    assert explicit.effective_norm == default.effective_norm == "batch"


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_batchnorm_false_is_the_old_spelling_of_none(plugins, kind: str) -> None:
    old, new = build(plugins, kind, {"batchnorm": False}), build(plugins, kind, {"norm": "none"})
    assert old.effective_norm == new.effective_norm == "none"
    assert repr(old) == repr(new)
    assert shapes(old) == shapes(new)
    for (key, a), b in zip(old.state_dict().items(), new.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("norm", ["spectral", "layer", "none"])
def test_batchnorm_false_beside_another_norm_is_refused(plugins, kind: str, norm: str) -> None:
    cls = DCGANGenerator if kind == "generator" else DCGANDiscriminator
    with pytest.raises(ValueError, match="old spelling of norm = 'none'; set norm alone"):
        cls.Params(batchnorm=False, norm=norm)
    with pytest.raises(RecipeError) as caught:
        plugins.registry.create(kind, "dcgan", {"batchnorm": False, "norm": norm},
                                image_spec=QUICKSTART)
    [(path, message)] = caught.value.problems
    assert path == f"$.{kind}"
    assert message.startswith(OLD_SPELLING) and f"norm = {norm!r}" in message
    # batchnorm = true (the default) goes with every norm.
    assert cls.Params(batchnorm=True, norm=norm).effective_norm == norm


def test_a_recipe_with_batchnorm_false_and_a_norm_is_refused_at_its_table(plugins) -> None:
    table = {"dataset": {"use": "synthetic", "image_size": 32, "channels": 1},
             "generator": {"use": "dcgan", "batchnorm": False},
             "discriminator": {"use": "dcgan", "batchnorm": False, "norm": "layer"}}
    with pytest.raises(RecipeError) as caught:
        build_recipe(table, plugins.registry)
    assert [path for path, _ in caught.value.problems] == ["$.discriminator"]
    assert OLD_SPELLING in str(caught.value)
    table["discriminator"] = {"use": "dcgan", "norm": "layer"}
    recipe = build_recipe(table, plugins.registry)
    assert recipe["generator"].params.effective_norm == "none"  # the old spelling still works
    assert recipe["discriminator"].params.effective_norm == "layer"


# ------------------------------------------------------------------ structure and counts

@pytest.mark.parametrize("norm", NORMS)
def test_quickstart_parameter_counts_per_norm(plugins, norm: str) -> None:
    generator = build(plugins, "generator", {"norm": norm})
    discriminator = build(plugins, "discriminator", {"norm": norm})
    assert (count(generator), count(discriminator)) == QUICKSTART_COUNTS[norm]
    # The trade: BatchNorm's 2 * C affine parameters for a bias of C per hidden convolution.
    batch = QUICKSTART_COUNTS["batch"]
    for network, batch_count in ((generator, batch[0]), (discriminator, batch[1])):
        channels = sum(m.out_channels for m in hidden(network))
        expected = batch_count - (channels if norm in ("spectral", "none") else 0)
        assert count(network) == expected


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("norm", NORMS)
def test_normalization_modules_and_biases(plugins, kind: str, norm: str) -> None:
    network = build(plugins, kind, {"norm": norm})
    batchnorms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    groupnorms = [m for m in network.modules() if isinstance(m, nn.GroupNorm)]
    convs = [m for m in network.modules() if isinstance(m, CONVS)]
    layers = hidden(network)
    assert len(batchnorms) == (len(layers) if norm == "batch" else 0)
    assert len(groupnorms) == (len(layers) if norm == "layer" else 0)
    assert all(m.num_groups == 1 for m in groupnorms)  # layer norm over C, H, W
    for m in groupnorms:  # initialised like BatchNorm: N(1, 0.02), bias 0
        assert m.weight.ne(1).any() and abs(m.weight.mean().item() - 1) < 0.02
        assert m.weight.std().item() < 0.05 and torch.count_nonzero(m.bias) == 0
    with_bias = {id(m) for m in convs if m.bias is not None}
    assert with_bias == ({id(m) for m in layers} if norm in ("spectral", "none") else set())
    # Normalization sits where BatchNorm sits: the module indices (and so the state_dict
    # keys of the convolutions) are those of the paper's network.
    paper = build(plugins, kind, {})
    assert [i for i, m in enumerate(network.main) if isinstance(m, CONVS)] == \
           [i for i, m in enumerate(paper.main) if isinstance(m, CONVS)]


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_spectral_norm_wraps_every_convolution_after_the_paper_init(plugins, kind: str) -> None:
    spectral = build(plugins, kind, {"norm": "spectral"}, seed=3)
    plain = build(plugins, kind, {"norm": "none"}, seed=3)
    convs = [(i, m) for i, m in enumerate(spectral.main) if isinstance(m, CONVS)]
    assert len(convs) == len([m for m in plain.main if isinstance(m, CONVS)])
    for index, conv in convs:
        assert parametrize.is_parametrized(conv, "weight"), index
        [norm] = conv.parametrizations.weight
        assert isinstance(norm, SpectralNorm)  # torch's, safe under torch.compile
        # Initialised before spectral normalization wrapped it: the same weights as without.
        original = conv.parametrizations.weight.original
        assert torch.equal(original, plain.main[index].weight), index
        assert abs(original.std().item() - 0.02) < 0.005
        # In use, the weight's largest singular value is about 1.
        matrix = conv.weight.detach().transpose(0, 1) if isinstance(conv, nn.ConvTranspose2d) \
            else conv.weight.detach()
        sigma = torch.linalg.matrix_norm(matrix.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, rel=0.1)
    # Power-iteration vectors are buffers: checkpoints (and G's EMA) carry them.
    keys = spectral.state_dict().keys()
    assert any(k.endswith("parametrizations.weight.0._u") for k in keys)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in spectral.modules())
    assert count(spectral) == count(plain)


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_builds_and_runs(plugins, norm: str) -> None:
    generator = build(plugins, "generator", {"norm": norm})
    discriminator = build(plugins, "discriminator", {"norm": norm})
    z = generator.sample_latent(3, torch.Generator().manual_seed(0))
    images = generator(z)
    assert images.shape == (3, 1, 32, 32) and images.abs().max() <= 1
    logits = discriminator(images)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in discriminator.parameters())


# ------------------------------------------------------------------ the contract kit

@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("norm", ["spectral", "layer", "none"])
def test_every_norm_keeps_the_contract(registry, kind: str, norm: str) -> None:
    report = check_component(kind, "dcgan:dcgan", registry=registry,
                             params={**SMALL[kind], "norm": norm}, sizes=(32,),
                             channels=(1, 3))
    # torch.compile (the kit's aot_eager backend) traces spectral normalization's power
    # iteration and gives the same outputs and gradients: nothing to opt out of.
    assert {"compile", "channels_last", "bf16", "state_dict", "determinism",
            "training"} <= set(report.passed)
    assert not report.failures


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_conditional_spectral_norm_keeps_the_contract(registry, kind: str) -> None:
    report = check_component(kind, "dcgan:dcgan", registry=registry,
                             params={**SMALL[kind], "norm": "spectral", "conditional": True},
                             sizes=(32,), channels=(3,))
    assert {"labels", "compile", "training"} <= set(report.passed)


# ------------------------------------------------------------------ the audit

def _audit(plugins, overrides: dict) -> dict:
    spec = ImageSpec(3, 32)
    registry = plugins.registry
    generator = registry.create("generator", "dcgan", {"width": 4, **overrides}, image_spec=spec)
    discriminator = registry.create("discriminator", "dcgan", {"width": 4, **overrides},
                                    image_spec=spec)
    batches = plugins.hook.ganforge_check(generator=generator, discriminator=discriminator,
                                          experiment=None, recipe=None)
    return {(r.network, r.guideline): r for batch in batches if batch for r in batch}


@pytest.mark.parametrize(("overrides", "lead"), [
    ({"norm": "spectral"}, "norm = 'spectral': spectral normalization of every layer, "
                           "no BatchNorm; "),
    ({"norm": "layer"}, "norm = 'layer': layer normalization (GroupNorm, one group) instead "
                        "of BatchNorm; "),
    ({"norm": "none"}, "norm = 'none': no normalization; "),
    ({"batchnorm": False}, "batchnorm = false: no normalization; "),
])
def test_audit_names_the_norm_that_replaces_batchnorm(plugins, overrides: dict,
                                                      lead: str) -> None:
    results = _audit(plugins, overrides)
    failed = sorted(key for key, r in results.items() if not r.passed)
    assert failed == [("discriminator", "batchnorm"), ("generator", "batchnorm")]
    for network in ("generator", "discriminator"):
        assert results[(network, "batchnorm")].detail.startswith(lead)


def test_audit_of_layer_norm(plugins) -> None:
    results = _audit(plugins, {"norm": "layer"})
    detail = results[("generator", "batchnorm")].detail
    assert "main.0 (ConvTranspose2d) has no BatchNorm (main.1 (GroupNorm) is not BatchNorm)" \
        in detail
    init = results[("generator", "init N(0, 0.02)")]
    assert init.passed and "3 GroupNorm layer(s) ~ N(1, 0.02) with zero bias" in init.detail


def test_audit_reports_spectral_normalization_as_a_deviation(plugins) -> None:
    results = _audit(plugins, {"norm": "spectral"})
    g = results[("generator", "batchnorm")].detail
    for path in ("main.0", "main.3", "main.6"):
        assert f"{path} (ConvTranspose2d) has no BatchNorm (spectral normalization instead)" \
            in g
    assert "main.9 (ConvTranspose2d) has spectral normalization, which the paper does not " \
           "use" in g  # the output layer: no BatchNorm there, but no spectral norm either
    d = results[("discriminator", "batchnorm")].detail
    assert "main.0 (Conv2d) has spectral normalization, which the paper does not use" in d
    assert "main.8 (Conv2d) has spectral normalization" in d  # the logit layer
    assert "main.2 (Conv2d) has no BatchNorm (spectral normalization instead)" in d
    assert "Parametrized" not in g + d  # layers are named by their own class
    # The initialisation is judged on the weights before normalization: the paper's.
    for network in ("generator", "discriminator"):
        init = results[(network, "init N(0, 0.02)")]
        assert init.passed, init.detail
        assert "4 weight tensor(s) ~ N(0, 0.02) (4 before spectral normalization)" \
            in init.detail
