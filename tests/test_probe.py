"""The linear probe of D's features (DCGAN paper section 5.1) on digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.evaluation.probe import discriminator_features, run_probe, split_labels
from ganforge.recipe import build_recipe
from ganforge.training import build_networks, read_checkpoint
from ganforge.training.checkpoint_checks import load_module_state
from tests.conftest import QUICKSTART_STEPS


def test_features_are_4x4_max_pools_of_every_conv_layer(plugins) -> None:
    from ganforge import ImageSpec

    d = plugins.registry.create("discriminator", "dcgan", {"width": 4},
                                image_spec=ImageSpec(1, 32))
    x = torch.randn(3, 1, 32, 32)
    features = discriminator_features(d, x)
    # 32x32 D: conv outputs 4x16x16, 8x8x8, 16x4x4 (the 1x1 logit layer is left out).
    assert features.shape == (3, (4 + 8 + 16) * 16)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    first = convs[0](x)
    expected = torch.nn.functional.adaptive_max_pool2d(first, 4).flatten(1)
    np.testing.assert_allclose(features[:, :64], expected.detach().numpy(), rtol=1e-6)
    assert d.training  # mode restored


def test_split_is_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(3), 10)
    train, test = split_labels(labels, 4, seed=0)
    assert len(train) == 12 and np.bincount(labels[train]).tolist() == [4, 4, 4]
    assert not set(train) & set(test) and len(test) == 18
    again, _ = split_labels(labels, 4, seed=0)
    other, _ = split_labels(labels, 4, seed=1)
    assert again.tolist() == train.tolist() and other.tolist() != train.tolist()
    with pytest.raises(UsageError, match="class 0 has 10 images"):
        split_labels(labels, 10, seed=0)


def test_quickstart_discriminator_beats_a_random_one(quickstart_run: Path, plugins) -> None:
    checkpoint = quickstart_run / "checkpoints" / f"step-{QUICKSTART_STEPS:07d}.safetensors"
    contents = read_checkpoint(checkpoint)
    import tomllib
    recipe = build_recipe(tomllib.loads(contents.recipe_toml), plugins.registry)
    _, trained = build_networks(recipe, plugins.registry)
    load_module_state(trained, contents.section("discriminator"), "d", checkpoint)
    _, random_d = build_networks(recipe, plugins.registry, seed=1)
    digits = plugins.registry.create("dataset", "digits", {"image_size": 32})
    margins = []
    for seed in range(3):
        trained_result, random_result = run_probe(trained, random_d, digits, 10, seed)
        assert trained_result.n_train == 100 and trained_result.n_test == 1697
        margins.append(trained_result.accuracy - random_result.accuracy)
    # Measured on the development machine (500 steps, default switches): 91.99/91.69/91.51%
    # against 89.22/89.69/89.16% for the random D, i.e. +2.8, +2.0 and +2.4 points.
    assert np.mean(margins) > 0.01, margins
    assert min(margins) > 0, margins


def test_probe_command(quickstart_run: Path) -> None:
    checkpoint = quickstart_run / "checkpoints" / f"step-{QUICKSTART_STEPS:07d}.safetensors"
    result = CliRunner().invoke(app, ["probe", str(checkpoint), "-l", "5", "--device", "cpu",
                                      "--json", "--test-size", "300"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"]["use"] == "ganforge:digits" and data["labels_per_class"] == 5
    names = [r["features"] for r in data["results"]]
    assert names == ["trained discriminator", "random discriminator"]
    assert all(r["n_train"] == 50 and r["n_test"] == 300 and r["feature_dim"] == 3584
               for r in data["results"])
    table = CliRunner().invoke(app, ["probe", str(checkpoint), "-l", "5", "--device", "cpu",
                                     "--dataset", "digits", "--test-size", "300"])
    assert table.exit_code == 0 and "random" in table.output and "trained" in table.output
    unlabelled = CliRunner().invoke(app, ["probe", str(checkpoint), "-l", "5", "--dataset",
                                          "synthetic", "--device", "cpu"])
    assert unlabelled.exit_code == 2 and "has no class labels" in unlabelled.output
