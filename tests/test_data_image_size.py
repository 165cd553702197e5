"""An image size the networks cannot build is a recipe error naming
``$.dataset.image_size`` and the sizes they can build, not an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge import ImageSpec
from ganforge.cli import app
from ganforge.errors import RecipeError

ROOT = Path(__file__).parent.parent


def test_set_dataset_image_size_7_is_one_recipe_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "quickstart.toml"), "--out", str(tmp_path / "run"),
        "--quiet", "--set", "dataset.image_size=7", "--set", "run.steps=1"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "error: $.dataset.image_size: the dcgan generator builds images of size 32, 64, 128 "
        "only, not 7"]


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("size", [7, 48, 256])
def test_each_network_names_the_dataset_size(plugins, kind: str, size: int) -> None:
    with pytest.raises(RecipeError, match=rf"^\$\.dataset\.image_size: the dcgan {kind} "
                                          rf"builds images of size 32, 64, 128 only, not "
                                          rf"{size}$"):
        plugins.registry.create(kind, "dcgan", {"width": 4},
                                image_spec=ImageSpec(channels=3, size=size))
