"""The evaluation API called directly (``ganforge.api.evaluate``, ``ganforge.api.latent``):
result objects with real values, and ganforge's errors (never SystemExit) for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from ganforge import load_plugins
from ganforge.api.evaluate import EvaluationResult, evaluate
from ganforge.api.latent import arithmetic, interpolate
from ganforge.errors import GanforgeError, UsageError
from ganforge.recipe import load_recipe
from ganforge.training import train
from tests.conftest import TINY_RECIPE


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe trained for 2 steps (well under a second on a CPU)."""
    folder = tmp_path_factory.mktemp("api_eval")
    recipe_path = folder / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE, encoding="utf-8")
    plugins = load_plugins()
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2"])
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


@pytest.fixture(scope="module")
def registry():  # noqa: ANN201  (a Registry)
    return load_plugins().registry


def never() -> None:
    raise AssertionError("the registry was loaded before the arguments were checked")


def test_evaluate_returns_scores_with_protocols_and_records_them(checkpoint: Path,
                                                                 registry) -> None:
    notes: list[str] = []
    result = evaluate(checkpoint, ["fid", "kid"], n=30, n_real=40, extractor="pixels",
                      device="cpu", registry=registry, note=notes.append)
    assert isinstance(result, EvaluationResult)
    assert result.step == 2 and result.generator == "raw" and not result.conditional
    assert [r.label for r in result.results] == ["fid", "kid"]
    assert set(result.scores) == {"fid", "kid"} and result.std == {}
    assert result.scores["fid"] > 0 and math.isfinite(result.scores["kid"])
    fid = result.results[0]
    assert fid.protocol["n_fake"] == 30 and fid.protocol["n_real"] == 40
    assert fid.protocol["extractor"] == "pixels-8x8" and fid.protocol["step"] == 2
    assert result.dataset["use"] == "ganforge:synthetic"
    assert result.recorded is not None and result.record_problem is None
    lines = result.recorded.read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["metric"] for line in lines[-2:]} == {"fid", "kid"}
    assert result.reference_stats is None and result.reference_images == 0


def test_evaluate_over_seeds_gives_mean_and_std(checkpoint: Path, registry) -> None:
    result = evaluate(checkpoint, ["fid"], n=20, n_real=20, extractor="pixels",
                      device="cpu", seeds=[0, 1], record=False, registry=registry)
    assert result.seeds == (0, 1) and result.results == () and result.recorded is None
    (entry,) = result.per_seed
    values = [s["value"] for s in entry["per_seed"]]
    assert entry["seeds"] == [0, 1] and values[0] != values[1]
    assert result.scores["fid"] == pytest.approx(sum(values) / 2)
    assert result.std["fid"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))


def test_evaluate_writes_reference_statistics(checkpoint: Path, registry,
                                              tmp_path: Path) -> None:
    target = tmp_path / "ref.npz"
    result = evaluate(checkpoint, ["fid"], n=10, n_real=12, extractor="pixels",
                      device="cpu", save_reference_stats=target, record=False,
                      registry=registry)
    assert result.reference_stats == target and target.is_file()
    assert result.reference_images == 12


@pytest.mark.parametrize(("kwargs", "piece"), [
    ({"n": 1}, "--n 1 is out of range"),
    ({"seeds": [3]}, "give 2 to 100 different seeds"),
    ({"seeds": [0, 1], "per_class": True}, "does not go with --per-class"),
    ({"n_per_class": 4}, "add --per-class"),
])
def test_evaluate_refuses_bad_arguments_before_loading_anything(checkpoint: Path, kwargs,
                                                                piece: str) -> None:
    with pytest.raises(UsageError, match=piece):
        evaluate(checkpoint, device="cpu", registry=never, **kwargs)


def test_evaluate_errors_are_ganforge_errors_not_exits(tmp_path: Path, registry,
                                                       checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="--resize is the Inception network's"):
        evaluate(checkpoint, extractor="pixels", resize="clean", device="cpu",
                 registry=registry)
    with pytest.raises(UsageError, match="unknown extractor 'dinov9'"):
        evaluate(checkpoint, extractor="dinov9", device="cpu", registry=registry)
    with pytest.raises(GanforgeError):
        evaluate(tmp_path / "missing.safetensors", ["fid"], extractor="pixels",
                 device="cpu", registry=registry)


def test_interpolate_returns_the_walks_it_wrote(checkpoint: Path, registry,
                                                tmp_path: Path) -> None:
    result = interpolate(checkpoint, rows=2, steps=3, out=tmp_path / "walk.png",
                         gif=tmp_path / "walk.gif", mode="linear", device="cpu",
                         registry=registry)
    assert result.images.shape == (6, 3, 32, 32) and result.mode == "linear"
    assert result.step == 2 and not result.is_ema and result.what == ""
    assert result.path == tmp_path / "walk.png"
    assert Image.open(result.path).size == (3 * 34 + 2, 2 * 34 + 2)
    assert result.gif == tmp_path / "walk.gif" and result.frames == 4
    with pytest.raises(UsageError, match="--steps 1 is out of range"):
        interpolate(checkpoint, rows=2, steps=1, out=tmp_path / "x.png", registry=never)


def test_arithmetic_sheet_then_figure(checkpoint: Path, registry, tmp_path: Path) -> None:
    sheet = arithmetic(checkpoint, tmp_path / "sheet.png", n=9, seed=3, device="cpu",
                       registry=registry)
    assert sheet.stage == "sheet" and sheet.n == 9 and sheet.seed == 3 and sheet.step == 2
    assert sheet.record is not None and json.loads(sheet.record.read_text())["n"] == 9
    figure = arithmetic(checkpoint, tmp_path / "sheet.png", "0,1,2", [3, 4, 5], "6,7,8",
                        out=tmp_path / "fig.png", neighbours=2, device="cpu",
                        registry=registry)
    assert figure.stage == "figure" and figure.path.is_file()
    assert figure.indices == ((0, 1, 2), (3, 4, 5), (6, 7, 8))
    assert (figure.n, figure.seed, figure.neighbours) == (9, 3, 2)
    with pytest.raises(UsageError, match="--c missing"):
        arithmetic(checkpoint, tmp_path / "sheet.png", "0,1,2", "3,4,5", registry=never)
