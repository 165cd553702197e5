"""The ResNet networks: mimicry's parameter counts, shapes at every size, the norm variants,
conditioning and the errors."""

from __future__ import annotations

import pytest
import torch
from ganforge_resnet import ResNetDiscriminator, ResNetGenerator
from ganforge_resnet.layers import IMAGE_SIZES, ConditionalBatchNorm2d
from torch import nn
from torch.nn.utils import parametrize

from ganforge import RecipeError
from ganforge.errors import UsageError
from ganforge.interfaces import ImageSpec
from ganforge.nn.layers import NORMS

#: Parameter counts of mimicry's networks (github.com/kwotsin/mimicry at commit
#: a7fda06c4aff1e6af8dc4c4a35ed6636e434c766), found by building them once with their own
#: code: torch_mimicry/nets/sngan/sngan_32.py, sngan_48.py, sngan_64.py, sngan_128.py
#: (SNGANGenerator<size>() and SNGANDiscriminator<size>() with their defaults),
#: torch_mimicry/nets/cgan_pd/cgan_pd_32.py (CGANPDGenerator32 and CGANPDDiscriminator32
#: with num_classes=10, the CIFAR-10 setting) and cgan_pd_128.py (num_classes=1000), with
#: torch_mimicry/modules/resblocks.py and modules/layers.py. Keys: (kind, image size,
#: classes); 3 channels throughout. Loading mimicry's state_dicts into these networks
#: (with relu_shortcut = true in D, see test_relu_shortcut_is_mimicry_s_block) gave
#: identical outputs at every size.
MIMICRY_PARAMETERS = {
    ("generator", 32, 0): 4_276_739,  # SNGANGenerator32: nz 128, ngf 256, bottom_width 4
    ("discriminator", 32, 0): 1_053_825,  # SNGANDiscriminator32: ndf 128
    ("generator", 32, 10): 4_304_387,  # CGANPDGenerator32(num_classes=10)
    ("discriminator", 32, 10): 1_055_105,  # CGANPDDiscriminator32(num_classes=10)
    ("generator", 48, 0): 4_878_083,  # SNGANGenerator48: ngf 512, bottom_width 6
    ("discriminator", 48, 0): 10_141_441,  # SNGANDiscriminator48: ndf 1024
    ("generator", 64, 0): 12_220_675,  # SNGANGenerator64: ngf 1024
    ("discriminator", 64, 0): 10_141_441,  # SNGANDiscriminator64: ndf 1024
    ("generator", 128, 0): 32_150_787,  # SNGANGenerator128: ngf 1024
    ("discriminator", 128, 0): 29_017_857,  # SNGANDiscriminator128: ndf 1024
    ("generator", 128, 1000): 41_996_931,  # CGANPDGenerator128(num_classes=1000)
    # CGANPDDiscriminator128(num_classes=1000, ndf=1024): mimicry's default there is
    # ndf=128 (582,497 parameters, 8 channels in the first block), unlike its SNGAN128's
    # 1024; this D keeps 1024 at 128 pixels, conditional or not.
    ("discriminator", 128, 1000): 30_041_857,
}

#: Small widths for the quick tests (16: every size builds, see channel_widths).
WIDTH = 16


def count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def generator(size: int = 32, channels: int = 3, classes: int = 0, **params) -> ResNetGenerator:
    params.setdefault("width", WIDTH)
    params.setdefault("latent_dim", 16)
    if classes:
        params.setdefault("conditional", True)
    return ResNetGenerator(ResNetGenerator.Params(**params),
                           image_spec=ImageSpec(channels, size, classes))


def discriminator(size: int = 32, channels: int = 3, classes: int = 0,
                  **params) -> ResNetDiscriminator:
    params.setdefault("width", WIDTH)
    if classes:
        params.setdefault("conditional", True)
    return ResNetDiscriminator(ResNetDiscriminator.Params(**params),
                               image_spec=ImageSpec(channels, size, classes))


def sn_layers(network: nn.Module) -> tuple[list[str], list[str]]:
    """The weight layers of ``network`` with and without spectral normalisation."""
    with_sn: list[str] = []
    without: list[str] = []
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Embedding):
            (with_sn if parametrize.is_parametrized(module, "weight") else without).append(name)
    return with_sn, without


def norm_layers(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, nn.BatchNorm2d | nn.GroupNorm)]


@pytest.mark.parametrize("kind, size, classes", sorted(MIMICRY_PARAMETERS))
def test_parameter_counts_match_mimicry(kind: str, size: int, classes: int) -> None:
    """At mimicry's defaults (width unset) the networks have exactly mimicry's parameters."""
    network: nn.Module
    if kind == "generator":
        network = generator(size, 3, classes, width=None, latent_dim=128)
    else:
        network = discriminator(size, 3, classes, width=None)
    assert count(network) == MIMICRY_PARAMETERS[kind, size, classes]


def test_default_widths_are_mimicry_s() -> None:
    widths = {size: (generator(size, width=None).l1.out_features,
                     discriminator(size, width=None).l_out.in_features) for size in (32, 48)}
    assert widths == {32: (4 * 4 * 256, 128), 48: (6 * 6 * 512, 1024)}


@pytest.mark.parametrize("size", IMAGE_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range_at_every_size(size: int, channels: int) -> None:
    torch.manual_seed(0)
    g, d = generator(size, channels), discriminator(size, channels)
    z = g.sample_latent(2, torch.Generator().manual_seed(0))
    for mode in (True, False):
        g.train(mode)
        d.train(mode)
        images = g(z)
        assert images.shape == (2, channels, size, size)
        assert images.dtype == torch.float32
        assert images.abs().max() <= 1.0
        assert g.image_spec == ImageSpec(channels, size)
        logits = d(images)
        assert logits.shape == (2,)
        assert torch.isfinite(logits).all()


def test_generator_blocks_upsample_from_the_bottom_width() -> None:
    """4x4 at 32, 64 and 128 pixels (3, 4 and 5 blocks), 6x6 at 48 (3 blocks)."""
    blocks = {size: (generator(size).bottom_width, len(generator(size).blocks))
              for size in IMAGE_SIZES}
    assert blocks == {32: (4, 3), 48: (6, 3), 64: (4, 4), 128: (4, 5)}


def test_latent_priors() -> None:
    seed = torch.Generator().manual_seed(0)
    normal = generator().sample_latent(256, seed)
    uniform = generator(prior="uniform").sample_latent(256, seed)
    assert normal.shape == uniform.shape == (256, 16)
    assert normal.min() < -1.5 and normal.max() > 1.5
    assert uniform.min() >= -1.0 and uniform.max() <= 1.0


def test_discriminator_default_is_spectrally_normalised_everywhere() -> None:
    for network in (discriminator(), discriminator(64), discriminator(classes=4)):
        with_sn, without = sn_layers(network)
        assert with_sn and not without
        assert not norm_layers(network)
    assert "l_y" in sn_layers(discriminator(classes=4))[0]  # the projection's embedding


@pytest.mark.parametrize("norm", NORMS)
def test_norm_variants_build_and_train(norm: str) -> None:
    torch.manual_seed(0)
    g, d = generator(norm=norm), discriminator(norm=norm)
    g_sn, g_plain = sn_layers(g)
    d_sn, d_plain = sn_layers(d)
    if norm == "spectral":
        assert g_sn and not g_plain and not norm_layers(g)
    else:
        assert not g_sn and not d_sn and g_plain and d_plain
    kinds = {type(m) for m in norm_layers(g) + norm_layers(d)}
    assert kinds == {"batch": {nn.BatchNorm2d}, "layer": {nn.GroupNorm}}.get(norm, set())
    logits = d(g(g.sample_latent(4, torch.Generator().manual_seed(0))))
    logits.mean().backward()
    for network in (g, d):
        for name, p in network.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_generator_batchnorm_sits_before_every_relu() -> None:
    """2 BatchNorms per block plus the output one, as in mimicry."""
    for size in IMAGE_SIZES:
        g = generator(size)
        assert len(norm_layers(g)) == 2 * len(g.blocks) + 1


def test_relu_shortcut_is_mimicry_s_block() -> None:
    """``relu_shortcut`` changes what D computes, not its parameters."""
    torch.manual_seed(0)
    plain = discriminator().eval()
    mimicry = discriminator(relu_shortcut=True).eval()
    mimicry.load_state_dict(plain.state_dict())
    images = torch.randn(3, 3, 32, 32)
    assert count(plain) == count(mimicry)
    assert not torch.allclose(plain(images), mimicry(images))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conditional_generator_class_weights_equal_indices(mode: str) -> None:
    torch.manual_seed(0)
    g = generator(classes=5).train(mode == "train")
    with torch.no_grad():  # distinct per-class gains and biases
        for m in g.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.embed.weight.normal_(1.0, 0.5)
    z = g.sample_latent(6, torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    by_index = g(z, y)
    by_weights = g(z, torch.nn.functional.one_hot(y, 5).float())
    assert torch.equal(by_index, by_weights)
    assert not torch.allclose(by_index, g(z, (y + 1) % 5))  # the label matters


def test_conditional_batchnorm_mixes_the_classes() -> None:
    torch.manual_seed(0)
    norm = ConditionalBatchNorm2d(4, 3).eval()
    with torch.no_grad():
        norm.embed.weight.normal_()
    x = torch.randn(2, 4, 5, 5)
    half = torch.tensor([[0.5, 0.5, 0.0]] * 2)
    mixed = norm(x, half)
    ends = (norm(x, torch.tensor([0, 0])) + norm(x, torch.tensor([1, 1]))) / 2
    torch.testing.assert_close(mixed, ends)


def test_projection_discriminator() -> None:
    """logit = linear(h) + <embed(y), h>; class weights give the same logits as indices."""
    torch.manual_seed(0)
    d = discriminator(classes=4).eval()
    images = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    logits = d(images, y)
    assert logits.shape == (4,)
    torch.testing.assert_close(d(images, torch.nn.functional.one_hot(y, 4).float()), logits)
    assert not torch.allclose(logits, d(images, (y + 1) % 4))
    # without the projection term the logit is the unconditional D's
    h = images
    for block in d.blocks:
        h = block(h)
    h = torch.relu(h).sum(dim=(2, 3))
    assert d.l_y is not None
    torch.testing.assert_close(logits, d.l_out(h).flatten() + (d.l_y(y) * h).sum(1))


def test_conditional_at_false_is_the_unconditional_network() -> None:
    torch.manual_seed(3)
    plain = generator(32, 3, 0)
    torch.manual_seed(3)
    on_labelled = generator(32, 3, 7, conditional=False)
    assert plain.state_dict().keys() == on_labelled.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                 on_labelled.state_dict().values(),
                                                 strict=True))
    assert not on_labelled.conditional and on_labelled.classes == 0


def test_labels_are_refused_by_unconditional_networks() -> None:
    g, d = generator(), discriminator()
    z = torch.randn(2, 16)
    with pytest.raises(TypeError, match="generator: unconditional"):
        g(z, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="discriminator: unconditional"):
        d(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))


def test_conditional_networks_need_labels_of_the_right_shape() -> None:
    g, d = generator(classes=3), discriminator(classes=3)
    z = torch.randn(2, 16)
    with pytest.raises(TypeError, match="called with labels"):
        g(z)
    with pytest.raises(ValueError, match=r"class weights must have shape \(2, 3\)"):
        g(z, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"class indices must have shape \(2,\)"):
        d(torch.randn(2, 3, 32, 32), torch.tensor([[0], [1]]))


@pytest.mark.parametrize("cls", [ResNetGenerator, ResNetDiscriminator])
def test_conditional_on_a_dataset_without_classes_is_a_one_line_usage_error(cls) -> None:
    with pytest.raises(UsageError) as error:
        cls(cls.Params(conditional=True), image_spec=ImageSpec(3, 32, 0))
    assert "\n" not in str(error.value)
    assert "conditional = true needs a dataset with classes" in str(error.value)


@pytest.mark.parametrize("norm", ["layer", "spectral", "none"])
def test_conditional_generator_needs_batchnorm(norm: str) -> None:
    with pytest.raises(ValueError, match="conditional = true conditions BatchNorm, so it needs "
                       f"norm = 'batch', not '{norm}'"):
        ResNetGenerator.Params(conditional=True, norm=norm)
    # the projection D conditions nothing but its logit: every norm
    assert discriminator(classes=2, norm=norm).conditional


def test_unsupported_sizes_and_widths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'image_size' must be one of \[32, 48, 64, 128\]"):
        ResNetGenerator.Params(image_size=96)
    with pytest.raises(RecipeError, match=r"\$\.dataset\.image_size"):
        generator(size=16)
    with pytest.raises(RecipeError, match=r"\$\.discriminator\.width.*needs width >= 16"):
        discriminator(size=64, width=8)
    with pytest.raises(UsageError, match="builds 3x32x32 images but the dataset gives"):
        ResNetGenerator(ResNetGenerator.Params(image_size=32, channels=3),
                        image_spec=ImageSpec(3, 64))


@pytest.mark.parametrize("height", IMAGE_SIZES)
def test_non_square_images_at_every_height(height: int) -> None:
    """G draws ``height x 2 * width_step`` images (its first map as many times wider), D
    takes them; square specs build the same networks as before (same parameter count)."""
    from ganforge_resnet.layers import width_step

    step = width_step(height)
    assert step == {32: 8, 48: 16, 64: 32, 128: 32}[height]
    wide = ImageSpec(3, height, width=height + step)
    g = ResNetGenerator(ResNetGenerator.Params(width=16, latent_dim=8), wide)
    d = ResNetDiscriminator(ResNetDiscriminator.Params(width=16), wide)
    images = g(torch.randn(2, 8))
    assert images.shape == (2, 3, height, height + step)
    assert d(images).shape == (2,)
    square = ResNetGenerator(ResNetGenerator.Params(width=16, latent_dim=8), ImageSpec(3, height))
    assert square.bottom_columns == square.bottom_width
    with pytest.raises(RecipeError, match=f"multiple of {step}, not {height + step // 2}"):
        ResNetGenerator(ResNetGenerator.Params(width=16, latent_dim=8),
                        ImageSpec(3, height, width=height + step // 2))
