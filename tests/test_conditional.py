"""Class labels through training: conditional networks, fake labels, losses that take
labels, the class grid, ``sample --class``, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import torch
from typer.testing import CliRunner

from ganforge import Loss
from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.assembly import assemble, load_experiment
from ganforge.training.checkpoint_format import read_checkpoint
from ganforge.training.step import GANStep

from .conftest import TINY_RECIPE

CONDITIONAL = TINY_RECIPE.replace('use = "synthetic"\ncount = 40\nimage_size = 32\nchannels = 3',
                                  'use = "digits"\nimage_size = 32\nchannels = 1') + """
conditional = true
"""
# The discriminator table is last in TINY_RECIPE: the appended key lands there; G too:
CONDITIONAL = CONDITIONAL.replace("latent_dim = 8\nwidth = 4",
                                  "latent_dim = 8\nwidth = 4\nconditional = true")


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class RecordingLoss(Loss):
    """BCE that records the labels the training step hands it."""

    @attrs.frozen
    class Params:
        """No params."""

    def __init__(self, params: object) -> None:
        super().__init__(params)
        self.seen: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []

    def discriminator_loss(self, discriminator, real, fake, *, real_labels=None,
                           fake_labels=None):
        self.seen.append((real_labels, fake_labels))
        return (torch.nn.functional.softplus(-discriminator(real, real_labels)).mean()
                + torch.nn.functional.softplus(discriminator(fake, fake_labels)).mean())

    def generator_loss(self, discriminator, fake, *, fake_labels=None):
        return torch.nn.functional.softplus(-discriminator(fake, fake_labels)).mean()


class OldLoss(Loss):
    """A loss written before labels existed."""

    @attrs.frozen
    class Params:
        """No params."""

    def discriminator_loss(self, discriminator, real, fake):
        return discriminator(real).mean() - discriminator(fake).mean()

    def generator_loss(self, discriminator, fake):
        return -discriminator(fake).mean()


def test_conditional_recipe_trains_and_checkpoints(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, CONDITIONAL), plugins.registry)
    assert recipe["generator"].params.conditional and recipe["discriminator"].params.conditional
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.step == 6
    experiment = load_experiment(result.checkpoint, plugins.registry)
    assert experiment.classes == 10 and experiment.generator.conditional
    # The sample grid: one row per class, the same latents in every row.
    grid = tmp_path / "run" / "samples" / "step-0000006.png"
    assert grid.is_file()


def test_real_and_fake_labels_reach_the_loss(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, CONDITIONAL), plugins.registry)
    x = assemble(recipe, plugins.registry, "cpu")
    x.loss = RecordingLoss(RecordingLoss.Params())
    step = GANStep(x, torch.Generator().manual_seed(0))
    real_labels = torch.arange(8) % 10
    images = torch.zeros(8, 1, 32, 32)
    step(lambda: (images, real_labels), 1)
    seen_real, seen_fake = x.loss.seen[0]
    assert torch.equal(seen_real, real_labels)
    assert seen_fake.dtype == torch.int64 and seen_fake.shape == (8,)
    assert int(seen_fake.min()) >= 0 and int(seen_fake.max()) < 10
    # Drawn from the latent generator: the same seed draws the same classes.
    again = assemble(recipe, plugins.registry, "cpu")
    again.loss = RecordingLoss(RecordingLoss.Params())
    GANStep(again, torch.Generator().manual_seed(0))(lambda: (images, real_labels), 1)
    assert torch.equal(again.loss.seen[0][1], seen_fake)


def test_fake_labels_real_reuses_the_batch_labels(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, CONDITIONAL), plugins.registry,
                         ["run.fake_labels=real"])
    x = assemble(recipe, plugins.registry, "cpu")
    x.loss = RecordingLoss(RecordingLoss.Params())
    real_labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    GANStep(x, torch.Generator().manual_seed(0))(
        lambda: (torch.zeros(8, 1, 32, 32), real_labels), 1)
    assert torch.equal(x.loss.seen[0][1], real_labels)


def test_unconditional_run_on_labelled_data_draws_no_labels(tmp_path: Path, plugins) -> None:
    """An unconditional run's random stream is what it was before labels existed: the
    labels are not drawn, so the latent generator advances by the latents alone."""
    recipe = load_recipe(write(tmp_path, CONDITIONAL.replace("conditional = true", "")),
                         plugins.registry)
    x = assemble(recipe, plugins.registry, "cpu")
    x.loss = RecordingLoss(RecordingLoss.Params())
    rng = torch.Generator().manual_seed(0)
    GANStep(x, rng)(lambda: (torch.zeros(8, 1, 32, 32), torch.arange(8)), 1)
    assert x.loss.seen[0][1] is None  # no fake labels in an unconditional run
    expected = torch.Generator().manual_seed(0)
    x.generator.sample_latent(8, expected, "cpu")
    assert torch.equal(rng.get_state(), expected.get_state())


def test_conditional_network_on_unlabelled_data_is_one_line(tmp_path: Path, plugins) -> None:
    text = TINY_RECIPE.replace("width = 4\n\n[discriminator]", "width = 4\nconditional = true\n"
                               "\n[discriminator]")
    recipe = load_recipe(write(tmp_path, text), plugins.registry)
    with pytest.raises(UsageError) as info:
        assemble(recipe, plugins.registry, "cpu")
    message = str(info.value)
    assert "\n" not in message and "conditional" in message and "classes" in message


def test_conditional_d_with_a_loss_without_labels_is_refused(tmp_path: Path, plugins) -> None:
    plugins.registry.register("loss", "old_style", OldLoss)
    recipe = load_recipe(write(tmp_path, CONDITIONAL + '\n[loss]\nuse = "old_style"\n'),
                         plugins.registry)
    with pytest.raises(UsageError, match=r"\[loss\] 'old_style' does not take labels"):
        assemble(recipe, plugins.registry, "cpu")
    # The same old loss trains unconditional networks on labelled data, unchanged.
    plain = load_recipe(write(tmp_path, CONDITIONAL.replace("conditional = true", "")
                              + '\n[loss]\nuse = "old_style"\n', "plain.toml"),
                        plugins.registry)
    x = assemble(plain, plugins.registry, "cpu")
    loss_d, loss_g = GANStep(x, torch.Generator().manual_seed(0))(
        lambda: (torch.zeros(8, 1, 32, 32), torch.arange(8)), 1)
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)


def test_sample_class_options(tmp_path: Path, plugins) -> None:
    recipe = load_recipe(write(tmp_path, CONDITIONAL), plugins.registry)
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    runner = CliRunner()
    every = runner.invoke(app, ["sample", str(checkpoint), "-n", "20", "-o",
                                str(tmp_path / "all.png"), "--device", "cpu"])
    assert every.exit_code == 0, every.output
    assert "20 samples (10 classes x 2)" in every.output
    one = runner.invoke(app, ["sample", str(checkpoint), "-n", "4", "--class", "3", "-o",
                              str(tmp_path / "three.png"), "--device", "cpu"])
    assert one.exit_code == 0 and "4 samples of class 3" in one.output
    bad = runner.invoke(app, ["sample", str(checkpoint), "--class", "10", "-o",
                              str(tmp_path / "x.png"), "--device", "cpu"])
    assert bad.exit_code != 0 and "'10' is not a class: use 0 to 9 or all" in bad.output
    # Class 3's images are what the generator draws for label 3.
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    from ganforge.sampling import class_labels, generate, image_grid

    g = load_experiment(checkpoint, plugins.registry).generator
    z = g.sample_latent(4, torch.Generator().manual_seed(0), "cpu")
    expected = (image_grid(generate(g, z, class_labels(4, 3, "cpu"))) * 255 + 0.5).clamp(
        0, 255).to(torch.uint8)
    with Image.open(tmp_path / "three.png") as image:
        written = pil_to_tensor(image.convert("RGB"))
    assert torch.equal(written[:1], expected[:1])


def test_sample_class_on_an_unconditional_checkpoint_is_one_line(tmp_path: Path, plugins,
                                                                   tiny_recipe: Path) -> None:
    recipe = load_recipe(tiny_recipe, plugins.registry)
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--class", "1", "-o",
                                      str(tmp_path / "x.png"), "--device", "cpu"])
    assert result.exit_code != 0
    assert "unconditional" in result.output and not (tmp_path / "x.png").exists()


def test_checkpoint_of_a_conditional_run_records_no_extra_state(tmp_path: Path,
                                                                 plugins) -> None:
    """Labels add no checkpoint state: the fake classes come from the checkpointed latent
    generator."""
    recipe = load_recipe(write(tmp_path, CONDITIONAL), plugins.registry)
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    names = read_checkpoint(checkpoint).tensors
    assert "rng/latent" in names
    assert not [k for k in names if "label" in k]
