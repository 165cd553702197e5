"""Evaluation and the probe with classes: labelled items, a conditional generator's seeded
fake labels, intra-class FID (``ganforge eval --per-class``), ``--no-ema``, and the probe
of a conditional D. Features are pixels (no Inception weights needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.evaluation.evaluator import (
    Evaluator,
    fake_features,
    label_seed,
    real_features,
)
from ganforge.evaluation.features import PixelExtractor
from ganforge.evaluation.probe import discriminator_features, run_probe
from ganforge.evaluation.statistics import frechet_distance, mean_and_covariance
from ganforge.recipe import load_recipe
from ganforge.sampling import generate
from ganforge.training import train
from ganforge.training.assembly import load_experiment

RECIPE = """
[run]
steps = 4
batch_size = 8
seed = 0
device = "cpu"
log_every = 2
sample_every = 4
checkpoint_every = 4
keep_last = 2
sample_count = 4

[dataset]
use = "digits"
image_size = 32
channels = 1

[generator]
use = "dcgan"
latent_dim = 8
width = 8
conditional = true

[discriminator]
use = "dcgan"
width = 8
conditional = true

[ema]
enabled = true
decay = 0.5
"""
UNCONDITIONAL = RECIPE.replace("conditional = true\n", "").replace("enabled = true", "")
TABLE = {"use": "digits", "image_size": 32, "channels": 1}
CPU = torch.device("cpu")


def _train(folder: Path, text: str) -> Path:
    from ganforge import load_plugins

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.toml").write_text(text, encoding="utf-8")
    plugins = load_plugins()
    recipe = load_recipe(folder / "recipe.toml", plugins.registry)
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("conditional"), RECIPE)


@pytest.fixture(scope="module")
def unconditional_checkpoint(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("unconditional"), UNCONDITIONAL)


class Recording(PixelExtractor):
    """Every pixel of every image as features (so an image can be found again)."""

    name = "all-pixels"

    def __call__(self, images):
        return images.float().flatten(1), None


def fid_metric(plugins, **params):
    return plugins.registry.create("metric", "fid", {"extractor": "pixels", **params})


def digits(plugins):
    return plugins.registry.create("dataset", "digits", {"image_size": 32})


def evaluator(plugins, tmp_path: Path, metrics: dict, extractor=None, dataset=None,
              **kwargs) -> Evaluator:
    dataset = digits(plugins) if dataset is None else dataset
    extractor = extractor or PixelExtractor()
    return Evaluator(metrics, dataset, TABLE, CPU, extractor_factory=lambda *a: extractor,
                     cache_dir=tmp_path / "ref", **kwargs)


def json_objects(text: str) -> list[dict]:
    objects, decoder = [], json.JSONDecoder()
    text = text.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:].strip()
    return objects


# -- real features of one class ----------------------------------------------------------------

def test_per_class_real_features_come_from_that_class_only(plugins, tmp_path: Path) -> None:
    data = digits(plugins)
    flat = data.images.flatten(1)
    targets = data.targets
    identity = {"dataset": TABLE, "content": {}}
    whole, whole_key = real_features(data, identity, Recording(), 50, 16, 0, tmp_path)
    assert "class" not in whole_key  # the whole set's key is what it was
    keys = {whole_key["n"]: whole_key}
    for cls in (0, 3, 9):
        members = int((targets == cls).sum())
        features, key = real_features(data, identity, Recording(), 10_000, 16, 0, tmp_path,
                                      label=cls)
        assert key["class"] == cls and key["n"] == members  # capped at the class's images
        assert len(features) == members
        # Each feature row is one dataset image, all distinct, all of class ``cls``.
        matches = (features.features[:, None, :] == flat[None]).all(-1)
        found = matches.float().argmax(1)
        assert bool(matches.any(1).all())
        assert set(targets[found].tolist()) == {cls}
        assert len(set(found.tolist())) == members
        keys[cls] = key
    # Every class has a cache file of its own, apart from the whole set's.
    assert len(list(tmp_path.glob("*.safetensors"))) == 4
    # The same selection read back from the cache.
    again, _ = real_features(data, identity, Recording(), 10_000, 16, 0, tmp_path, label=3)
    assert torch.equal(again.features,
                       real_features(data, identity, Recording(), 10_000, 16, 0, None,
                                     label=3)[0].features)
    # With fewer images asked: the class's members in the seeded order of the whole set.
    few, _ = real_features(data, identity, Recording(), 5, 16, 0, tmp_path / "b", label=3)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    expected = order[targets[order] == 3][:5]
    assert torch.equal(few.features, flat[expected])


def test_labelled_items_evaluate_like_their_images(plugins, tmp_path: Path) -> None:
    """A whole-set evaluation of a labelled dataset reads the images of its pairs."""
    data = digits(plugins)
    identity = {"dataset": TABLE, "content": {}}
    features, _ = real_features(data, identity, Recording(), 40, 16, 0, tmp_path)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:40]
    assert torch.equal(features.features, data.images[order].flatten(1))


# -- fake features of a conditional generator -------------------------------------------------

def test_conditional_fake_labels_are_seeded_and_uniform(conditional_checkpoint: Path,
                                                        plugins) -> None:
    g = load_experiment(conditional_checkpoint, plugins.registry).generator
    extractor = PixelExtractor()
    one = fake_features(g, extractor, 40, 16, 7, CPU, classes=10)
    two = fake_features(g, extractor, 40, 16, 7, CPU, classes=10)
    assert torch.equal(one.features, two.features)
    assert not torch.equal(one.features, fake_features(g, extractor, 40, 16, 8, CPU,
                                                       classes=10).features)
    # By hand: the latents of the seed, batch by batch, and labels drawn from their own
    # generator seeded with label_seed(seed).
    rng = torch.Generator().manual_seed(7)
    labels_rng = torch.Generator().manual_seed(label_seed(7))
    parts = []
    drawn = []
    for size in (16, 16, 8):
        z = g.sample_latent(size, rng, "cpu")
        y = torch.randint(10, (size,), generator=labels_rng)
        drawn.append(y)
        parts.append(extractor(generate(g, z, y))[0])
    assert torch.equal(one.features, torch.cat(parts))
    assert len(set(torch.cat(drawn).tolist())) > 1  # classes vary, not one class
    # One class asked: the same latents, every image with that label.
    rng = torch.Generator().manual_seed(7)
    z = g.sample_latent(16, rng, "cpu")
    only = fake_features(g, extractor, 16, 16, 7, CPU, label=4)
    assert torch.equal(only.features,
                       extractor(generate(g, z, torch.full((16,), 4)))[0])
    # The generator's own classes are used when none are given.
    assert torch.equal(fake_features(g, extractor, 40, 16, 7, CPU).features, one.features)


def test_conditional_evaluation_is_seeded(conditional_checkpoint: Path, plugins,
                                          tmp_path: Path) -> None:
    g = load_experiment(conditional_checkpoint, plugins.registry).generator
    metrics = {"fid": ("fid", fid_metric(plugins, n_fake=60, n_real=60, batch_size=25))}
    first = evaluator(plugins, tmp_path / "a", metrics, classes=10).run(g, 4)
    second = evaluator(plugins, tmp_path / "b", metrics, classes=10).run(g, 4)
    assert [r.value for r in first] == [r.value for r in second]
    assert "uniform over 10 classes" in first[0].protocol["fake_labels"]


def test_unconditional_path_is_unchanged(unconditional_checkpoint: Path, plugins,
                                         tmp_path: Path) -> None:
    """Features computed the old way, ``generate(G, z)`` over the seed's latents, batch by
    batch: exactly what fake_features gives, and the protocol has no fake labels."""
    experiment = load_experiment(unconditional_checkpoint, plugins.registry)
    g = experiment.generator
    assert experiment.classes == 10 and not g.conditional
    extractor = PixelExtractor()
    rng = torch.Generator().manual_seed(3)
    old = torch.cat([extractor(generate(g, g.sample_latent(size, rng, "cpu")))[0]
                     for size in (16, 16, 3)])
    new = fake_features(g, extractor, 35, 16, 3, CPU, classes=10)
    assert torch.equal(new.features, old)
    metrics = {"fid": ("fid", fid_metric(plugins, n_fake=35, n_real=50, batch_size=16,
                                         seed=3))}
    (result,) = evaluator(plugins, tmp_path, metrics, classes=10).run(g)
    data = digits(plugins)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(3))[:50]
    real = extractor(data.images[order])[0]
    assert result.value == frechet_distance(*mean_and_covariance(old),
                                            *mean_and_covariance(real))
    assert "fake_labels" not in result.protocol and "generator" not in result.protocol


# -- intra-class FID ---------------------------------------------------------------------------

def test_intra_class_fid_equals_a_hand_computation(conditional_checkpoint: Path, plugins,
                                                   tmp_path: Path) -> None:
    g = load_experiment(conditional_checkpoint, plugins.registry).generator
    metrics = {"fid": ("fid", fid_metric(plugins, n_fake=10_000, n_real=10_000,
                                         batch_size=64, seed=5))}
    ev = evaluator(plugins, tmp_path, metrics, classes=10)
    (result,) = ev.run_per_class(g, 4, n_per_class=30, generator_label="ema")
    data = digits(plugins)
    extractor = PixelExtractor()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(5))
    z = g.sample_latent(30, torch.Generator().manual_seed(5), "cpu")
    expected = []
    for cls in range(10):
        fake = extractor(generate(g, z, torch.full((30,), cls)))[0]
        real = extractor(data.images[order[data.targets[order] == cls][:30]])[0]
        expected.append(frechet_distance(*mean_and_covariance(fake),
                                         *mean_and_covariance(real)))
    assert result.values == pytest.approx(expected, rel=1e-12, abs=0)
    assert result.value == pytest.approx(sum(expected) / 10, rel=1e-12)
    assert result.label == "fid" and len(result.per_class) == 10
    seven = result.per_class[7].protocol
    assert seven["per_class"] is True and seven["class"] == 7
    assert seven["n_fake"] == seven["n_real"] == 30 and seven["generator"] == "ema"
    assert result.protocol["per_class"] is True and result.protocol["classes"] == 10
    assert result.protocol["n_real"] == [30] * 10 and result.protocol["n_per_class"] == 30
    assert "intra-class fid" in result.summary() and "30 fake and real" in result.summary()
    # The whole-set FID differs from the class means, and keeps its own reference.
    (whole,) = ev.run(g, 4)
    assert whole.reference["key"] not in {r.reference["key"] for r in result.per_class}


def test_default_images_per_class_are_capped_at_the_class(conditional_checkpoint: Path,
                                                          plugins, tmp_path: Path) -> None:
    g = load_experiment(conditional_checkpoint, plugins.registry).generator
    metrics = {"fid": ("fid", fid_metric(plugins, n_fake=10_000, n_real=10_000,
                                         batch_size=200)),
               "kid": ("kid", plugins.registry.create("metric", "kid", {
                   "extractor": "pixels", "n_fake": 40, "n_real": 10_000,
                   "batch_size": 200, "subsets": 5}))}
    fid, kid = evaluator(plugins, tmp_path, metrics, classes=10).run_per_class(g)
    counts = torch.bincount(digits(plugins).targets, minlength=10).tolist()
    assert fid.protocol["n_real"] == counts and fid.protocol["n_fake"] == counts
    assert kid.protocol["n_real"] == [40] * 10  # min(n_fake, n_real, images of the class)
    assert "std" in kid.per_class[0].extra


def test_per_class_refusals(unconditional_checkpoint: Path, conditional_checkpoint: Path,
                            plugins, tmp_path: Path) -> None:
    metrics = {"fid": ("fid", fid_metric(plugins))}
    unconditional = load_experiment(unconditional_checkpoint, plugins.registry).generator
    with pytest.raises(UsageError, match="unconditional"):
        evaluator(plugins, tmp_path, metrics, classes=10).run_per_class(unconditional)
    conditional = load_experiment(conditional_checkpoint, plugins.registry).generator
    unlabelled = plugins.registry.create("dataset", "synthetic", {"count": 20,
                                                                  "channels": 1})
    with pytest.raises(UsageError, match="has no classes"):
        Evaluator(metrics, unlabelled, {"use": "synthetic"}, CPU).run_per_class(conditional)
    inception = {"is": ("inception_score", plugins.registry.create(
        "metric", "inception_score", {"extractor": "pixels"}))}
    with pytest.raises(UsageError, match="no real images"):
        evaluator(plugins, tmp_path, inception, classes=10).run_per_class(conditional)


def test_eval_per_class_on_an_unconditional_checkpoint_is_one_line(
        unconditional_checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(unconditional_checkpoint), "--per-class",
                                      "--extractor", "pixels", "--device", "cpu"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--per-class" in lines[0] and "unconditional" in lines[0]
    for args in (["--n-per-class", "5"], ["--per-class", "-m", "inception_score"]):
        refused = CliRunner().invoke(app, ["eval", str(unconditional_checkpoint), *args,
                                           "--extractor", "pixels", "--device", "cpu"])
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1


def test_eval_per_class_command(conditional_checkpoint: Path) -> None:
    base = ["eval", str(conditional_checkpoint), "--extractor", "pixels", "--device", "cpu"]
    result = CliRunner().invoke(app, [*base, "--per-class", "--n-per-class", "20", "--json"])
    assert result.exit_code == 0, result.output
    (fid,) = json_objects(result.stdout)
    assert fid["metric"] == "fid" and fid["intra_class"] is True
    assert [c["class"] for c in fid["classes"]] == list(range(10))
    assert fid["value"] == pytest.approx(sum(c["value"] for c in fid["classes"]) / 10)
    assert all(c["protocol"]["per_class"] and c["protocol"]["n_real"] == 20
               for c in fid["classes"])
    assert fid["protocol"]["generator"] == "ema" and fid["protocol"]["n_per_class"] == 20
    table = CliRunner().invoke(app, [*base, "--per-class", "--n-per-class", "20"])
    assert table.exit_code == 0, table.output
    assert "intra-class fid" in table.output and "mean" in table.output
    assert "generator: the EMA of G" in table.output


def test_eval_no_ema(conditional_checkpoint: Path) -> None:
    base = ["eval", str(conditional_checkpoint), "--extractor", "pixels", "--device", "cpu",
            "--n", "40", "--n-real", "40", "--json"]
    ema = CliRunner().invoke(app, base)
    raw = CliRunner().invoke(app, [*base, "--no-ema"])
    assert ema.exit_code == 0 and raw.exit_code == 0, ema.output + raw.output
    (with_ema,), (without,) = json_objects(ema.stdout), json_objects(raw.stdout)
    assert with_ema["protocol"]["generator"] == "ema"
    assert without["protocol"]["generator"] == "raw"
    assert with_ema["value"] != without["value"]  # decay 0.5: the average is not G
    table = CliRunner().invoke(app, [*base[:-1], "--no-ema"])
    assert "generator: the raw G (--no-ema)" in table.output


# -- the probe ---------------------------------------------------------------------------------

def test_probe_of_a_conditional_discriminator_on_digits(conditional_checkpoint: Path,
                                                        plugins) -> None:
    from ganforge.training import assemble

    experiment = load_experiment(conditional_checkpoint, plugins.registry,
                                 parts={"discriminator"})
    trained = experiment.discriminator
    random_d = assemble(experiment.recipe, plugins.registry, "cpu", parts={"discriminator"},
                        seed=1, training=False).discriminator
    assert trained.conditional
    data = digits(plugins)
    images = data.images[:6]
    with pytest.raises(UsageError, match="conditional"):
        discriminator_features(trained, images)
    # D sees the labels: the same images with other labels give other features.
    zeros = discriminator_features(trained, images, labels=np.zeros(6, dtype=np.int64))
    ones = discriminator_features(trained, images, labels=np.ones(6, dtype=np.int64))
    assert not np.allclose(zeros, ones)
    results = run_probe(trained, random_d, data, 5, seed=0, test_size=200)
    assert [r.name for r in results] == ["trained discriminator", "random discriminator"]
    assert all(r.fixed_class == 0 and r.n_train == 50 and r.n_test == 200 for r in results)
    # Every image was given class 0: the labels do not leak into the features.
    from ganforge.evaluation.probe import fixed

    assert np.array_equal(fixed(np.arange(6)), np.zeros(6, dtype=np.int64))
    assert all(0.0 <= r.accuracy <= 1.0 for r in results)


def test_probe_command_on_a_conditional_checkpoint(conditional_checkpoint: Path) -> None:
    base = ["probe", str(conditional_checkpoint), "-l", "5", "--device", "cpu",
            "--test-size", "100"]
    result = CliRunner().invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["conditional_class"] == 0
    table = CliRunner().invoke(app, base)
    assert table.exit_code == 0 and "every image was given class 0" in table.output


def test_probe_of_an_unconditional_d_on_labelled_items(unconditional_checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["probe", str(unconditional_checkpoint), "-l", "5",
                                      "--device", "cpu", "--test-size", "100", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["conditional_class"] is None
    assert all(r["n_train"] == 50 for r in data["results"])
