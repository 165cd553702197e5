"""The DCGAN reference plugin: paper architecture, parameter counts, init, audit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge import ImageSpec
from ganforge.errors import RecipeError, UsageError

RGB64 = {"latent_dim": 100, "width": 64, "image_size": 64, "channels": 3}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_pytorch_example(plugins) -> None:
    registry = plugins.registry
    generator = registry.create("generator", "dcgan", RGB64)
    discriminator = registry.create("discriminator", "dcgan",
                                    {k: v for k, v in RGB64.items() if k != "latent_dim"})
    assert count(generator) == 3_576_704
    assert count(discriminator) == 2_765_568


def test_paper_lsun_generator_projects_to_1024_maps(plugins) -> None:
    generator = plugins.registry.create("generator", "dcgan", {**RGB64, "width": 128})
    first = generator.main[0]
    assert isinstance(first, nn.ConvTranspose2d) and first.out_channels == 1024
    transposed = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == 5  # the projection plus four fractional-strided convolutions
    assert all(m.stride == (2, 2) for m in transposed[1:])


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_ranges(plugins, size: int) -> None:
    registry = plugins.registry
    spec = ImageSpec(channels=3, size=size)
    generator = registry.create("generator", "dcgan", {"width": 4, "latent_dim": 8},
                                image_spec=spec)
    discriminator = registry.create("discriminator", "dcgan", {"width": 4}, image_spec=spec)
    z = generator.sample_latent(3, torch.Generator().manual_seed(0))
    images = generator(z)
    assert images.shape == (3, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    logits = discriminator(images)
    assert logits.shape == (3,)
    assert logits.dtype == torch.float32


def test_priors(plugins) -> None:
    registry = plugins.registry
    spec = ImageSpec(1, 32)
    uniform = registry.create("generator", "dcgan", {"latent_dim": 1000}, image_spec=spec)
    z = uniform.sample_latent(64, torch.Generator().manual_seed(1))
    assert z.shape == (64, 1000) and z.min() >= -1 and z.max() <= 1
    assert z.min() < -0.99 and abs(z.mean().item()) < 0.02
    again = uniform.sample_latent(64, torch.Generator().manual_seed(1))
    assert torch.equal(z, again)  # seeded
    normal = registry.create("generator", "dcgan", {"latent_dim": 1000, "prior": "normal"},
                             image_spec=spec)
    zn = normal.sample_latent(64, torch.Generator().manual_seed(1))
    assert zn.abs().max() > 1.5 and abs(zn.std().item() - 1) < 0.02


def test_initialisation_follows_the_paper(plugins) -> None:
    torch.manual_seed(0)
    generator = plugins.registry.create("generator", "dcgan", RGB64)
    for m in generator.modules():
        if isinstance(m, nn.ConvTranspose2d):
            assert abs(m.weight.std().item() - 0.02) < 0.002
            assert abs(m.weight.mean().item()) < 0.002
        if isinstance(m, nn.BatchNorm2d):
            assert abs(m.weight.mean().item() - 1.0) < 0.01
            assert m.weight.std().item() < 0.04
            assert torch.count_nonzero(m.bias) == 0


def test_batchnorm_switch(plugins) -> None:
    spec = ImageSpec(3, 32)
    generator = plugins.registry.create("generator", "dcgan", {"batchnorm": False},
                                        image_spec=spec)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
    hidden = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)][:-1]
    assert all(m.bias is not None for m in hidden)  # no BatchNorm to absorb the bias


def test_image_size_must_fit_the_dataset(plugins) -> None:
    with pytest.raises(UsageError, match="builds 3x64x64 images but the dataset gives 3x32x32"):
        plugins.registry.create("generator", "dcgan", {"image_size": 64},
                                image_spec=ImageSpec(3, 32))
    with pytest.raises(RecipeError, match=r"\$\.generator\.image_size.*\[32, 64, 128\]"):
        plugins.registry.create("generator", "dcgan", {"image_size": 48})
    with pytest.raises(UsageError, match="no dataset gives them"):
        plugins.registry.create("generator", "dcgan", {})


def _check_results(plugins, overrides: dict):
    spec = ImageSpec(3, 32)
    registry = plugins.registry
    generator = registry.create("generator", "dcgan", {"width": 4, **overrides}, image_spec=spec)
    discriminator = registry.create("discriminator", "dcgan", {"width": 4, **overrides},
                                    image_spec=spec)
    batches = plugins.hook.ganforge_check(generator=generator, discriminator=discriminator,
                                          experiment=None, recipe=None)
    return {(r.network, r.guideline): r for batch in batches if batch for r in batch}


def test_audit_passes_the_reference_networks(plugins) -> None:
    results = _check_results(plugins, {})
    assert len(results) == 12
    failed = [key for key, r in results.items() if not r.passed]
    assert failed == []


def test_audit_reports_batchnorm_ablation(plugins) -> None:
    results = _check_results(plugins, {"batchnorm": False})
    failed = sorted(key for key, r in results.items() if not r.passed)
    assert failed == [("discriminator", "batchnorm"), ("generator", "batchnorm")]
    assert "main.0" in results[("generator", "batchnorm")].detail
