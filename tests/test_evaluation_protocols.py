"""Issue 16 in the evaluator: the ``extractor`` kind (a plugin's extractor chosen per metric,
recorded in the protocol), one extraction shared by FID, KID and the manifold metrics, the
warning for fewer images than a claimed protocol, and reference statistics imported from
and exported to pytorch-fid / clean-fid ``.npz`` files."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge import FeatureExtractor, load_plugins, param
from ganforge.cli import app
from ganforge.errors import RecipeError
from ganforge.evaluation.evaluator import Evaluator
from ganforge.evaluation.npz_stats import load_reference_npz, save_reference_npz
from ganforge.recipe import build_recipe, load_recipe
from ganforge.training import train

CPU = torch.device("cpu")


class ChannelMeans(FeatureExtractor):
    """A plugin's extractor: per-channel means and standard deviations at ``scale``; it
    counts the images it saw and the devices it was loaded on."""

    @attrs.frozen
    class Params:
        """How the features are scaled."""

        scale: float = param(1.0, "factor of the features", validator=attrs.validators.gt(0))

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.seen = 0
        self.loaded: list[torch.device] = []

    @property
    def name(self) -> str:
        return f"channel-moments/x{self.params.scale:g}"

    @property
    def resize(self) -> str:
        return "none (moments of the whole image)"

    def load(self, device: torch.device) -> None:
        self.loaded.append(device)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        self.seen += images.shape[0]
        x = images.float().flatten(2)
        return torch.cat([x.mean(2), x.std(2)], 1) * self.params.scale, None


@pytest.fixture(scope="module")
def plugins():
    loaded = load_plugins()
    loaded.registry.register("extractor", "channel_moments", ChannelMeans)
    return loaded


class Digits(torch.nn.Module):
    """A 'generator' drawing real digits (shifted by ``shift``) by the latent's index."""

    latent_dim = 1

    def __init__(self, images: torch.Tensor, shift: float = 0.0) -> None:
        super().__init__()
        self.images, self.shift = images, shift

    def sample_latent(self, n, generator, device=None):
        return torch.randint(0, len(self.images), (n, 1), generator=generator).float()

    def forward(self, z, labels=None):
        return (self.images[z[:, 0].long()] + self.shift).clamp(-1, 1)


def _digits(plugins, n: int = 200):
    dataset = plugins.registry.create("dataset", "digits", {"image_size": 16})
    images = torch.stack([dataset[i] if isinstance(dataset[i], torch.Tensor) else dataset[i][0]
                          for i in range(n)])
    return dataset, images


def _evaluator(plugins, tmp_path: Path, metrics: dict[str, tuple[str, dict]], dataset):
    registry = plugins.registry
    built = {label: (name, registry.create("metric", name, params))
             for label, (name, params) in metrics.items()}
    return Evaluator(built, dataset, {"use": "digits", "image_size": 16}, CPU,
                     cache_dir=tmp_path / "ref", registry=registry)


def test_a_plugin_extractor_is_chosen_per_metric_and_recorded(plugins, tmp_path: Path) -> None:
    dataset, images = _digits(plugins)
    common = {"n_fake": 120, "n_real": 150, "batch_size": 50}
    evaluator = _evaluator(plugins, tmp_path, {
        "fid_moments": ("fid", {**common, "extractor": "channel_moments",
                                "extractor_params": {"scale": 2.0}}),
        "precision_moments": ("precision", {**common, "extractor": "channel_moments",
                                            "extractor_params": {"scale": 2.0}}),
        "fid_pixels": ("fid", {**common, "extractor": "pixels"}),
    }, dataset)
    results = {r.label: r for r in evaluator.run(Digits(images), step=7)}
    moments = results["fid_moments"].protocol
    assert moments["extractor"] == "channel-moments/x2"
    assert moments["resize"] == "none (moments of the whole image)"
    assert moments["extractor_params"] == {"scale": 2.0}
    assert results["fid_pixels"].protocol["extractor"] == "pixels-8x8"
    # one extractor per distinct (name, params), loaded once, and the two metrics that use
    # it share one extraction: 120 generated + 150 real images, not twice that
    built = [e for e in evaluator._extractors.values() if isinstance(e, ChannelMeans)]
    assert len(built) == 1 and built[0].loaded == [CPU]
    assert built[0].seen == 120 + 150
    # the features really are the plugin's: 2 x (mean, std) of one channel
    assert results["fid_moments"].value != pytest.approx(results["fid_pixels"].value)


def test_fid_kid_and_the_manifold_metrics_share_one_extraction(plugins, tmp_path: Path) -> None:
    dataset, images = _digits(plugins)
    common = {"n_fake": 100, "n_real": 120, "extractor": "channel_moments"}
    names = ["fid", "kid", "precision", "recall", "density", "coverage"]
    evaluator = _evaluator(plugins, tmp_path, {
        name: (name, {**common, **({"subsets": 5, "subset_size": 50} if name == "kid"
                                   else {})}) for name in names}, dataset)
    results = evaluator.run(Digits(images))
    [extractor] = evaluator._extractors.values()
    assert extractor.seen == 100 + 120
    values = {r.label: r.value for r in results}
    assert set(values) == set(names)
    for name in ("precision", "recall", "density", "coverage"):
        assert values[name] >= 0
    assert 0 < values["coverage"] <= 1 and 0 < values["precision"] <= 1


def test_the_extractor_is_checked_when_the_recipe_is_built(plugins) -> None:
    import tomllib

    from tests.conftest import TINY_RECIPE

    def recipe(metric: dict) -> None:
        table = tomllib.loads(TINY_RECIPE)
        table["eval"] = {"every": 1, "metrics": {"fid": {"use": "fid", **metric}}}
        build_recipe(table, plugins.registry)

    recipe({"extractor": "channel_moments", "extractor_params": {"scale": 3.0}})
    with pytest.raises(RecipeError) as unknown:
        recipe({"extractor": "dinov9"})
    assert "$.eval.metrics.fid.extractor" in str(unknown.value)
    assert "dinov9" in str(unknown.value)
    with pytest.raises(RecipeError) as wrong:
        recipe({"extractor": "channel_moments", "extractor_params": {"scale": -1.0}})
    assert "$.eval.metrics.fid.extractor_params.scale" in str(wrong.value)
    with pytest.raises(RecipeError) as typo:
        recipe({"extractor": "pixels", "extractor_params": {"sise": 4}})
    assert "sise" in str(typo.value)
    with pytest.raises(RecipeError) as resize:
        recipe({"resize": "bicubic"})
    assert "$.eval.metrics.fid.resize" in str(resize.value)


class SameName(ChannelMeans):
    """An extractor whose name does not change with its params (as a careless plugin's
    might): its params still keep cached real features apart."""

    @property
    def name(self) -> str:
        return "channel-moments"


def test_extractor_params_key_the_cached_real_features(plugins, tmp_path: Path) -> None:
    plugins.registry.register("extractor", "same_name", SameName)
    dataset, images = _digits(plugins)
    results = {}
    for scale in (1.0, 10.0):
        evaluator = _evaluator(plugins, tmp_path, {"fid": ("fid", {
            "n_fake": 60, "n_real": 80, "extractor": "same_name",
            "extractor_params": {"scale": scale}})}, dataset)
        [results[scale]] = evaluator.run(Digits(images))
        [extractor] = evaluator._extractors.values()
        assert extractor.seen == 60 + 80  # the real features were extracted, not reused
    assert results[1.0].reference["key"] != results[10.0].reference["key"]
    # the generated and real images are the same digits: FID near 0 at either scale
    assert results[10.0].value < 1.0 and results[1.0].value < 1.0


def test_fewer_images_than_the_claimed_protocol_are_warned_about(plugins,
                                                                 tmp_path: Path) -> None:
    dataset, images = _digits(plugins)
    evaluator = _evaluator(plugins, tmp_path, {
        "short": ("fid", {"n_fake": 60, "n_real": 80, "extractor": "pixels",
                          "protocol_images": 70}),
        "enough": ("fid", {"n_fake": 60, "n_real": 80, "extractor": "pixels",
                           "protocol_images": 60, "seed": 1}),
        "unclaimed": ("kid", {"n_fake": 60, "n_real": 80, "extractor": "pixels",
                              "subsets": 3, "subset_size": 20}),
    }, dataset)
    results = {r.label: r for r in evaluator.run(Digits(images))}
    [warning] = results["short"].warnings
    assert "60 generated" in warning and "70" in warning and "80 real" not in warning
    assert results["enough"].warnings == () and results["unclaimed"].warnings == ()


def test_fid_against_imported_statistics_equals_fid_against_the_images(
        plugins, tmp_path: Path) -> None:
    """The real features' statistics exported as pytorch-fid's .npz and imported back give
    the FID computed from the images; the imported file is recorded in the protocol."""
    dataset, images = _digits(plugins)
    params = {"n_fake": 100, "n_real": 150, "extractor": "pixels"}
    direct = _evaluator(plugins, tmp_path, {"fid": ("fid", params)}, dataset)
    [from_images] = direct.run(Digits(images, shift=0.1))
    mu, sigma, count = direct.real_statistics()
    assert count == 150 and mu.dtype == torch.float64
    stats = save_reference_npz(tmp_path / "digits.npz", mu.numpy(), sigma.numpy())
    with np.load(stats, allow_pickle=False) as data:  # what pytorch-fid reads
        assert set(data.files) == {"mu", "sigma"} and data["sigma"].shape == (64, 64)
    imported = _evaluator(plugins, tmp_path, {"fid": ("fid", {**params,
                                                              "reference_stats": str(stats)})},
                          None)  # no dataset at all
    [from_file] = imported.run(Digits(images, shift=0.1))
    assert from_file.value == pytest.approx(from_images.value, rel=1e-9)
    assert from_file.protocol["reference"]["file"] == str(stats.resolve())
    assert len(from_file.protocol["reference"]["sha256"]) == 64
    assert from_file.protocol["n_real"] is None


def test_statistics_of_another_dimension_are_refused(plugins, tmp_path: Path) -> None:
    from ganforge.errors import UsageError

    stats = save_reference_npz(tmp_path / "inception.npz", np.zeros(2048), np.eye(2048))
    _, images = _digits(plugins)
    evaluator = _evaluator(plugins, tmp_path, {"fid": ("fid", {
        "n_fake": 50, "extractor": "pixels", "reference_stats": str(stats)})}, None)
    with pytest.raises(UsageError, match="2048 dimensions, but the extractor gives 64"):
        evaluator.run(Digits(images))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, plugins) -> Path:
    from tests.conftest import TINY_RECIPE

    folder = tmp_path_factory.mktemp("eval_npz")
    recipe_path = folder / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE)
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2"])
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


def _fid(output: str) -> dict:
    return json.JSONDecoder().raw_decode(output.strip())[0]


def test_eval_cli_exports_and_imports_reference_statistics(checkpoint: Path,
                                                           tmp_path: Path) -> None:
    stats = tmp_path / "real.npz"
    base = ["eval", str(checkpoint), "-m", "fid", "--extractor", "pixels", "--n", "40",
            "--n-real", "50", "--device", "cpu", "--json"]
    exported = CliRunner().invoke(app, [*base, "--save-reference-stats", str(stats)])
    assert exported.exit_code == 0, exported.output
    n_real = _fid(exported.stdout)["protocol"]["n_real"]  # the tiny set's size caps it
    assert f"wrote the reference statistics of {n_real} real images to {stats}" in \
        exported.stderr
    mu, sigma = load_reference_npz(stats)
    assert mu.shape == (192,) and sigma.shape == (192, 192)
    imported = CliRunner().invoke(app, [*base, "--reference-stats", str(stats)])
    assert imported.exit_code == 0, imported.output
    assert _fid(imported.stdout)["value"] == pytest.approx(_fid(exported.stdout)["value"],
                                                           rel=1e-9)
    assert _fid(imported.stdout)["protocol"]["reference"]["file"] == str(stats.resolve())


def test_eval_cli_warns_when_fewer_images_than_the_protocol(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "--extractor",
                                      "pixels", "--n", "30", "--protocol-images", "50000",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "warning: fid: scored with 30 generated and" in result.stderr
    assert "fewer than the 50000 of the protocol it follows" in result.stderr


@pytest.mark.parametrize(("options", "message"), [
    (["--save-reference-stats", "stats.txt"], "not a .npz file in an existing folder"),
    (["--save-reference-stats", "s.npz", "--per-class"], "does not go with"),
    (["--extractor", "pixels", "--resize", "clean"], "--resize is the Inception network's"),
    (["--reference-stats", "missing.npz"], "missing.npz"),
    (["--extractor", "dinov9"], "unknown extractor 'dinov9'"),
    (["--extractor", "pixels", "--extractor-param", "sise=4"], "sise"),
    (["--extractor", "pixels", "--extractor-param", "size"], "expected KEY=VALUE"),
])
def test_eval_cli_refuses_bad_options_before_any_image(checkpoint: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       options: list[str],
                                                       message: str) -> None:
    from ganforge.evaluation import evaluator

    def never(*args, **kwargs):
        raise AssertionError("images were generated")

    monkeypatch.setattr(evaluator, "fake_features", never)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "--device", "cpu",
                                      *options])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output


def test_eval_cli_follows_the_protocol_the_run_claims(plugins, tmp_path: Path) -> None:
    """A checkpoint whose recipe claims a protocol for a metric (protocol_images, an
    extractor) is scored with that claim: fewer images are warned about without
    --protocol-images, and another extractor is noted."""
    from tests.conftest import TINY_RECIPE

    recipe_path = tmp_path / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE + '\n[eval]\nevery = 2\n[eval.metrics.fid]\nuse = "fid"\n'
                           'extractor = "pixels"\nn_fake = 16\nn_real = 16\n'
                           'protocol_images = 1000\n')
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2"])
    checkpoint = train(recipe, plugins, tmp_path / "run", progress=False).checkpoint
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "--extractor",
                                      "pixels", "--n", "30", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "fewer than the 1000 of the protocol it follows" in result.stderr
    assert "note:" not in result.stderr
    other = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "kid", "--extractor",
                                     "pixels", "--n", "30", "--device", "cpu"])
    assert other.exit_code == 0 and "warning" not in other.stderr  # kid claims nothing


def test_eval_cli_refuses_reference_statistics_for_other_metrics(checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "-m", "kid",
                                      "--reference-stats", str(tmp_path / "x.npz"),
                                      "--device", "cpu"])
    assert result.exit_code == 2
    assert "--reference-stats is for fid; kid need the dataset's images" in result.output


def test_eval_cli_passes_extractor_params(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "fid", "--extractor",
                                      "pixels", "--extractor-param", "size=4", "--n", "30",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    protocol = _fid(result.stdout)["protocol"]
    assert protocol["extractor"] == "pixels-4x4" and protocol["extractor_params"] == {"size": 4}


def test_eval_cli_manifold_metrics_and_resize(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "precision", "-m",
                                      "recall", "-m", "density", "-m", "coverage",
                                      "--extractor", "pixels", "--n", "40", "--n-real", "50",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for name in ("precision", "recall", "density", "coverage"):
        assert name in result.stdout
    bad = CliRunner().invoke(app, ["eval", str(checkpoint), "--resize", "nearest",
                                   "--device", "cpu"])
    assert bad.exit_code == 2 and "resize" in bad.output
