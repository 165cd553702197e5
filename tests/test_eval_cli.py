"""``ganforge eval``: scores with their protocol; a clear error without Inception weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.evaluation.inception import WEIGHTS_FILE
from ganforge.recipe import load_recipe
from ganforge.training import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from ganforge import load_plugins
    from tests.conftest import TINY_RECIPE

    folder = tmp_path_factory.mktemp("eval")
    recipe_path = folder / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE)
    plugins = load_plugins()
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2"])
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


def test_eval_prints_scores_with_protocol(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "-m", "kid",
                                      "--extractor", "pixels", "--n", "30", "--n-real", "40",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    objects, text = [], result.stdout
    decoder = json.JSONDecoder()
    while text.strip():
        obj, end = decoder.raw_decode(text.strip())
        objects.append(obj)
        text = text.strip()[end:]
    assert [o["metric"] for o in objects] == ["fid", "kid"]
    fid = objects[0]
    assert fid["value"] > 0 and fid["protocol"]["n_fake"] == 30
    assert fid["protocol"]["n_real"] == 40 and fid["protocol"]["step"] == 2
    assert fid["protocol"]["extractor"] == "pixels-8x8"
    assert fid["protocol"]["dataset"]["use"] == "ganforge:synthetic"
    assert "std" in objects[1]


def test_eval_without_weights_says_what_to_put_where(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "--device", "cpu"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert WEIGHTS_FILE in lines[0] and os.environ["GANFORGE_CACHE_DIR"] in lines[0]
    assert "--inception-weights" in lines[0]


def _real_weights() -> Path | None:
    path = os.environ.get("GANFORGE_INCEPTION_WEIGHTS")
    return Path(path) if path and Path(path).is_file() else None


@pytest.mark.skipif(_real_weights() is None, reason="needs the real FID Inception weights "
                    "(a 96 MB download): set GANFORGE_INCEPTION_WEIGHTS to the .pth file")
def test_fid_equals_torchmetrics_with_the_real_weights(tmp_path: Path) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    from ganforge.evaluation.features import InceptionExtractor
    from ganforge.evaluation.statistics import frechet_distance, mean_and_covariance

    weights = _real_weights()
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 3, 64, 64, generator=g)
    fake = (torch.rand(64, 3, 64, 64, generator=g) * 0.8 + 0.1)
    for resize, antialias in (("antialias", True), ("tf1", False)):
        extractor = InceptionExtractor(weights, resize=resize)
        f_real, _ = extractor(real * 2 - 1)
        f_fake, _ = extractor(fake * 2 - 1)
        ours = frechet_distance(*mean_and_covariance(f_fake), *mean_and_covariance(f_real))
        theirs = FrechetInceptionDistance(normalize=True, antialias=antialias,
                                          feature_extractor_weights_path=str(weights))
        theirs.update(real, real=True)
        theirs.update(fake, real=False)
        assert ours == pytest.approx(float(theirs.compute()), rel=1e-4)
