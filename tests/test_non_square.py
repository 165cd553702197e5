"""Non-square images (width != height): the image spec, the datasets that resize photos
(image folders, LSUN, prepared sets) and the synthetic set, the ResNet plugin, sampling and
export; refused in one line where a network builds square images only (DCGAN, the plain
loop)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import ganforge
from ganforge.cli import app
from ganforge.datasets.decoding import BadImage, resize_center_crop
from ganforge.datasets.synthetic import SyntheticDataset
from ganforge.errors import RecipeError, UsageError
from ganforge.interfaces import ImageSpec

RECIPE = """
[run]
steps = 2
batch_size = 4
device = "cpu"
sample_every = 2
checkpoint_every = 2

[dataset]
use = "synthetic"
count = 16
image_size = 32
width = 64

[generator]
use = "resnet"
width = 16
latent_dim = 8

[discriminator]
use = "resnet"
width = 16
"""


def test_the_spec_is_square_unless_a_width_is_given() -> None:
    square = ImageSpec(3, 32)
    assert square.width == 32 and square.square and square.shape() == (3, 32, 32)
    assert square.pixels() == "32x32" and square == ImageSpec(3, 32, 0, 32)
    wide = ImageSpec(3, 32, width=64)
    assert wide.height == 32 and not wide.square and wide.shape() == (3, 32, 64)
    assert wide.pixels() == "32x64" and not wide.same_images(square)


def test_resize_covers_the_crop_then_centers_it() -> None:
    # A horizontal ramp: the center crop keeps the middle columns.
    wide = torch.arange(300, dtype=torch.float32).repeat(3, 100, 1).to(torch.uint8)
    out = resize_center_crop(wide, 32, "wide.png", width=64)
    assert out.shape == (3, 32, 64)
    tall = torch.zeros(3, 300, 100, dtype=torch.uint8)
    assert resize_center_crop(tall, 32, "tall.png", width=64).shape == (3, 32, 64)
    assert resize_center_crop(tall, 64, "tall.png", width=32).shape == (3, 64, 32)
    # Square crops are what they were: torchvision's shorter-side rule.
    import torchvision.transforms.v2.functional as TF
    expected = TF.center_crop(TF.resize(wide, [32], antialias=True), [32, 32])
    assert torch.equal(resize_center_crop(wide, 32, "wide.png"), expected)
    assert torch.equal(resize_center_crop(wide, 32, "wide.png", width=32), expected)
    with pytest.raises(BadImage, match="^sliver.png: 4x4000 pixels is too elongated to "
                                       "resize to 1024x512"):
        resize_center_crop(torch.zeros(1, 4000, 4, dtype=torch.uint8), 1024, "sliver.png",
                           width=512)


def test_synthetic_images_have_the_width() -> None:
    data = SyntheticDataset(SyntheticDataset.Params(count=4, image_size=16, width=40))
    assert data.image_spec.shape() == (3, 16, 40) and data[0].shape == (3, 16, 40)
    square = SyntheticDataset(SyntheticDataset.Params(count=4, image_size=16))
    assert square.image_spec.square and square[0].shape == (3, 16, 16)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(50, 90), (90, 50), (64, 64), (40, 200)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_an_image_folder_and_its_prepared_set_are_non_square(plugins, photos: Path,
                                                               tmp_path: Path) -> None:
    runner = CliRunner()
    prepared = tmp_path / "prepared"
    result = runner.invoke(app, ["data", "prepare", "image_folder", "--set",
                                 f"root={photos}", "--set", "image_size=24", "--set",
                                 "width=48", "--out", str(prepared), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "(3x24x48)" in result.output and "image_size = 24, width = 48" in result.output
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["image_spec"] == {"channels": 3, "size": 24, "width": 48}
    folder = plugins.registry.create("dataset", "image_folder", {
        "root": str(photos), "image_size": 24, "width": 48})
    read = plugins.registry.create("dataset", "prepared", {
        "root": str(prepared), "image_size": 24, "width": 48})
    assert folder.image_spec == read.image_spec == ImageSpec(3, 24, width=48)
    for i in range(len(folder)):
        assert folder[i].shape == (3, 24, 48) and torch.equal(folder[i], read[i])
    with pytest.raises(ganforge.errors.DataError, match="holds 3x24x48 images but the recipe "
                                                        "asks for 3x24x24"):
        plugins.registry.create("dataset", "prepared", {"root": str(prepared),
                                                        "image_size": 24})


def test_resnet_trains_samples_and_exports_non_square_images(plugins, tmp_path: Path) -> None:
    recipe = tmp_path / "wide.toml"
    recipe.write_text(RECIPE)
    result = ganforge.train(recipe, plugins, tmp_path / "run")
    assert result.step == 2 and result.checkpoint is not None
    grid = Image.open(tmp_path / "run" / "samples" / "step-0000002.png")
    assert grid.width > 1.8 * grid.height  # a grid of 32x64 images, as many rows as columns
    generator = ganforge.load_generator(result.checkpoint)
    z = generator.sample_latent(3, torch.Generator().manual_seed(0), "cpu")
    assert generator(z).shape == (3, 3, 32, 64)
    exported = ganforge.export(result.checkpoint, tmp_path / "export")
    config = json.loads((exported.written.folder / "config.json").read_text())
    assert config["image"] == {"channels": 3, "classes": 0, "size": 32, "width": 64}
    assert "32x64" in (exported.written.folder / "README.md").read_text()
    loaded = ganforge.load_generator(exported.written.folder)
    assert loaded.image_spec.shape() == (3, 32, 64)
    assert torch.equal(loaded(z), generator(z))


def test_a_square_export_has_no_width_key(plugins, tmp_path: Path) -> None:
    """Square exports read and write ``config.json`` as before ``width`` existed."""
    recipe = tmp_path / "square.toml"
    recipe.write_text(RECIPE.replace("width = 64\n", ""))
    result = ganforge.train(recipe, plugins, tmp_path / "run")
    exported = ganforge.export(result.checkpoint, tmp_path / "export")
    path = exported.written.folder / "config.json"
    assert json.loads(path.read_text())["image"] == {"channels": 3, "classes": 0, "size": 32}
    assert ganforge.load_generator(exported.written.folder).image_spec.shape() == (3, 32, 32)


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_dcgan_refuses_non_square_images_in_one_line(plugins, tmp_path: Path,
                                                     network: str) -> None:
    recipe = tmp_path / "wide.toml"
    recipe.write_text(RECIPE)
    with pytest.raises(RecipeError) as caught:
        ganforge.train(recipe, plugins, tmp_path / "run",
                       overrides=[f"{network}.use=dcgan", f"{network}.width=8"])
    message = str(caught.value)
    assert message == (f"$.dataset.width: the dcgan {network} builds square images only, "
                       "not 32x64 (height x width)")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resnet_refuses_a_width_its_layers_cannot_divide(plugins, tmp_path: Path) -> None:
    recipe = tmp_path / "wide.toml"
    recipe.write_text(RECIPE)
    with pytest.raises(RecipeError, match=r"^\$\.dataset\.width: the resnet generator at "
                                          "height 32 needs a width that is a multiple of "
                                          "8, not 60$"):
        ganforge.train(recipe, plugins, tmp_path / "run", overrides=["dataset.width=60"])


def test_the_plain_loop_refuses_non_square_images() -> None:
    from ganforge.peer import train_plain

    data = SyntheticDataset(SyntheticDataset.Params(count=4, image_size=32, width=64))
    with pytest.raises(UsageError, match="square DCGAN, not 32x64 images"):
        train_plain(data, steps=1, batch_size=2, width=4, seed=0)
