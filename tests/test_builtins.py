"""Built-in loss, optimizer and datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganforge.errors import DataError


class Affine(nn.Module):
    """A stand-in discriminator: one logit per image, differentiable."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1) * self.scale


def test_bce_matches_the_paper_objective(plugins) -> None:
    loss = plugins.registry.create("loss", "bce")
    d = Affine()
    real, fake = torch.randn(6, 1, 4, 4) * 3, torch.randn(6, 1, 4, 4) * 3
    expected_d = (F.binary_cross_entropy_with_logits(d(real), torch.ones(6))
                  + F.binary_cross_entropy_with_logits(d(fake), torch.zeros(6)))
    torch.testing.assert_close(loss.discriminator_loss(d, real, fake), expected_d)
    # Non-saturating generator loss: -log sigmoid(D(G(z))).
    expected_g = -torch.log(torch.sigmoid(d(fake))).mean()
    torch.testing.assert_close(loss.generator_loss(d, fake), expected_g)
    # Stable on logits where a sigmoid would saturate to exactly 0.
    huge = torch.full((2, 1, 4, 4), -200.0)
    assert torch.isfinite(loss.generator_loss(d, huge))


def test_adam_builds_with_its_params(plugins) -> None:
    opt = plugins.registry.create("optimizer", "adam", {"lr": 1e-3, "betas": [0.9, 0.99]})
    built = opt.build([nn.Parameter(torch.zeros(2))], torch.device("cpu"))
    assert isinstance(built, torch.optim.Adam)
    group = built.param_groups[0]
    assert group["lr"] == 1e-3 and group["betas"] == (0.9, 0.99)
    default = plugins.registry.create("optimizer", "adam").params
    assert (default.lr, default.betas) == (2e-4, (0.5, 0.999))


def test_digits(plugins) -> None:
    dataset = plugins.registry.create("dataset", "digits", {"image_size": 32})
    assert len(dataset) == 1797
    image, label = dataset[0]  # labelled: (image, digit)
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and image.max() > 0.5
    assert dataset.targets[:10].tolist() == list(range(10)) and label == 0
    rgb = plugins.registry.create("dataset", "digits", {"image_size": 64, "channels": 3})
    five = rgb[5][0]
    assert five.shape == (3, 64, 64) and torch.equal(five[0], five[2])


def test_synthetic_is_seeded(plugins) -> None:
    make = plugins.registry.create
    a = make("dataset", "synthetic", {"count": 10, "image_size": 16, "channels": 4, "seed": 3})
    b = make("dataset", "synthetic", {"count": 10, "image_size": 16, "channels": 4, "seed": 3})
    c = make("dataset", "synthetic", {"count": 10, "image_size": 16, "channels": 4, "seed": 4})
    assert len(a) == 10 and a[2].shape == (4, 16, 16)
    assert torch.equal(a[2], b[2]) and not torch.equal(a[2], c[2])
    assert not torch.equal(a[2], a[3])
    assert a[2].min() >= -1 and a[2].max() <= 1
    with pytest.raises(IndexError):
        a[10]


def test_image_folder(tmp_path: Path, plugins) -> None:
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "sub" / "wide.png")
    Image.new("L", (20, 30), 128).save(tmp_path / "grey.jpg")
    Image.new("P", (16, 16)).save(tmp_path / "palette.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = plugins.registry.create("dataset", "image_folder",
                                      {"root": str(tmp_path), "image_size": 8})
    assert [p.name for p in dataset.files] == ["grey.jpg", "palette.gif", "wide.png"]
    red = dataset[2]
    assert red.shape == (3, 8, 8)
    torch.testing.assert_close(red[0], torch.ones(8, 8))
    torch.testing.assert_close(red[1], -torch.ones(8, 8))
    assert dataset[0].shape == (3, 8, 8)
    grey = plugins.registry.create("dataset", "image_folder",
                                   {"root": str(tmp_path), "image_size": 8, "channels": 1})
    assert grey[2].shape == (1, 8, 8)


def test_image_folder_errors_name_the_place(tmp_path: Path, plugins) -> None:
    with pytest.raises(DataError, match="is not a folder"):
        plugins.registry.create("dataset", "image_folder", {"root": str(tmp_path / "none")})
    with pytest.raises(DataError, match="no images"):
        plugins.registry.create("dataset", "image_folder", {"root": str(tmp_path)})
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dataset = plugins.registry.create("dataset", "image_folder", {"root": str(tmp_path)})
    with pytest.raises(DataError, match="broken.png"):
        dataset[0]


def test_lsun_names_the_missing_path(tmp_path: Path, plugins) -> None:
    with pytest.raises(DataError, match=r"no LSUN lmdb at '.*bedroom_train_lmdb'.*dataset.root"):
        plugins.registry.create("dataset", "lsun", {"root": str(tmp_path)})
