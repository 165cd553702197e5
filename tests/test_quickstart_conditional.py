"""The conditional quickstart draws the digit it is asked for: ``ganforge sample CKPT
--class k`` is judged by a classifier trained on scikit-learn's real digits
(:mod:`ganforge.evaluation.digit_classifier`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.evaluation.digit_classifier import DigitClassifier
from ganforge.sampling import class_labels, generate
from ganforge.training.assembly import build_networks, load_experiment
from tests.conftest import CONDITIONAL_STEPS

PER_CLASS = 100


def checkpoint_of(run: Path) -> Path:
    return run / "checkpoints" / f"step-{CONDITIONAL_STEPS:07d}.safetensors"


def test_each_class_draws_its_digit(conditional_quickstart_run: Path, plugins) -> None:
    experiment = load_experiment(checkpoint_of(conditional_quickstart_run), plugins.registry)
    generator = experiment.generator
    classifier = DigitClassifier(32)
    rng = torch.Generator().manual_seed(0)
    accuracy = []
    for k in range(10):
        z = generator.sample_latent(PER_CLASS, rng, "cpu")
        accuracy.append(classifier.score(generate(generator, z, class_labels(PER_CLASS, k,
                                                                              "cpu"))).accuracy(k))
    # Most samples of class k are classified as k, for every k.
    assert min(accuracy) > 0.5, np.round(accuracy, 2)
    # The same latents with labels ignored would not do it: the untrained G is near chance.
    untrained, _ = build_networks(experiment.recipe, plugins.registry)
    z = untrained.sample_latent(PER_CLASS, torch.Generator().manual_seed(0), "cpu")
    chance = classifier.score(generate(untrained, z, class_labels(PER_CLASS, 3, "cpu")))
    assert chance.accuracy(3) < 0.5


def test_sample_class_command_draws_that_digit(conditional_quickstart_run: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "sevens.png"
    result = CliRunner().invoke(app, ["sample", str(checkpoint_of(conditional_quickstart_run)),
                                      "--class", "7", "-n", "64", "-o", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # Cut the written 8x8 grid (32-pixel tiles, 2-pixel padding) back into images.
    with Image.open(out) as image:
        grid = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32)) / 127.5 - 1
    tiles = torch.stack([grid[2 + r * 34: 34 + r * 34, 2 + c * 34: 34 + c * 34]
                         for r in range(8) for c in range(8)]).unsqueeze(1)
    assert DigitClassifier(32).score(tiles).accuracy(7) > 0.5


def test_class_accuracy_metric_on_the_conditional_quickstart(conditional_quickstart_run: Path,
                                                             plugins) -> None:
    """The shortened run (300 of the recipe's steps) through ``class_accuracy``: a looser
    level than the full recipe's figures in docs/results.md."""
    from ganforge.evaluation.evaluator import Evaluator

    experiment = load_experiment(checkpoint_of(conditional_quickstart_run), plugins.registry)
    metric = plugins.registry.create("metric", "class_accuracy", {"n_fake": 2000})
    evaluator = Evaluator({"acc": ("class_accuracy", metric)}, None, {"use": "digits"},
                          torch.device("cpu"), classes=10, registry=plugins.registry)
    result = evaluator.run(experiment.generator, CONDITIONAL_STEPS)[0]
    assert result.value > 0.8, result
    assert result.extra["min_class"] > 0.5, result
