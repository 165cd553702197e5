"""A tiny end-to-end training run of the ResNet networks from a recipe file, through
ganforge's Python API, unconditional and conditional (hinge loss, as SNGAN)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganforge.recipe import load_recipe
from ganforge.testing import load_plugin
from ganforge.training import train
from ganforge.training.assembly import load_generator

RECIPE = """\
[run]
steps = 2
batch_size = 4
seed = 0
device = "cpu"
precision = "fp32"
log_every = 1
sample_every = 2
checkpoint_every = 2
sample_count = 4

[dataset]
use = "synthetic"
count = 16
image_size = 32
channels = 3
classes = {classes}

[generator]
use = "resnet"
latent_dim = 16
width = 16
conditional = {conditional}

[discriminator]
use = "resnet"
width = 16
conditional = {conditional}

[loss]
use = "hinge"
"""


@pytest.fixture(scope="module")
def plugins():
    """The installed plugins with this one loaded, whether or not it is installed."""
    return load_plugin("resnet", "ganforge_resnet.plugin")


@pytest.mark.parametrize("conditional", [False, True])
def test_a_tiny_resnet_run_trains(plugins, tmp_path: Path, conditional: bool) -> None:
    path = tmp_path / "resnet_tiny.toml"
    path.write_text(RECIPE.format(classes=3 if conditional else 0,
                                  conditional=str(conditional).lower()))
    recipe = load_recipe(path, plugins.registry)
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.step == 2 and not result.interrupted
    assert result.checkpoint is not None
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_metrics.values())

    g, _, step = load_generator(result.checkpoint, plugins.registry)
    assert step == 2 and type(g).__name__ == "ResNetGenerator"
    assert g.conditional is conditional
    z = g.sample_latent(3, torch.Generator().manual_seed(0), device="cpu")
    with torch.no_grad():
        images = g(z, torch.tensor([0, 1, 2])) if conditional else g(z)
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
