"""FID, KID and IS: correct against float64 SciPy and torchmetrics; the evaluator's
protocol and reference cache. A stand-in extractor is used, so no download is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ganforge.evaluation.evaluator import Evaluator
from ganforge.evaluation.features import FeatureSet, PixelExtractor
from ganforge.evaluation.statistics import (
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mean_and_covariance,
)


def random_statistics(dim: int, seed: int):
    g = np.random.default_rng(seed)
    a, b = g.normal(size=(dim, dim)), g.normal(size=(dim, dim))
    return g.normal(size=dim), a @ a.T / dim, g.normal(size=dim), b @ b.T / dim + 0.1 * np.eye(dim)


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize(("dim", "seed"), [(16, 0), (64, 1), (256, 2)])
def test_frechet_distance_matches_float64_scipy(dim: int, seed: int) -> None:
    mu1, s1, mu2, s2 = random_statistics(dim, seed)
    expected = scipy_frechet(mu1, s1, mu2, s2)
    got = frechet_distance(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert abs(got - expected) / abs(expected) <= 1e-6


class Identity(torch.nn.Module):
    """Lets torchmetrics take precomputed features as its 'images'."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fid_and_kid_match_torchmetrics_on_the_same_features() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 32, generator=g)
    fake = torch.randn(200, 32, generator=g) * 1.1 + 0.2
    fid = FrechetInceptionDistance(feature=Identity(32), normalize=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    mu1, s1 = mean_and_covariance(fake)
    mu2, s2 = mean_and_covariance(real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(fid.compute()), rel=1e-5)
    kid = KernelInceptionDistance(feature=Identity(32), subsets=1, subset_size=200,
                                  normalize=True)
    kid.update(real[:200], real=True)
    kid.update(fake, real=False)
    ours, _ = kernel_inception_distance(fake, real[:200], subsets=1, subset_size=200)
    assert ours == pytest.approx(float(kid.compute()[0]), rel=1e-5)


def test_kid_is_unbiased() -> None:
    # Same distribution: the unbiased MMD^2 estimator averages to 0 (a biased one would
    # stay clearly positive for small subsets).
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    mean, std = kernel_inception_distance(x, y, subsets=200, subset_size=20, seed=3)
    assert abs(mean) < 3 * std / np.sqrt(200)
    # A shifted distribution is clearly positive.
    shifted, _ = kernel_inception_distance(x + 0.5, y, subsets=50, subset_size=200)
    assert shifted > 20 * std / np.sqrt(200)


def test_kid_estimator_against_brute_force() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(30, 5, generator=g, dtype=torch.float64), torch.randn(
        40, 5, generator=g, dtype=torch.float64)

    def k(a, b):
        return (a @ b / 5 + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(30)) / (m * 30)
    expected = float(xx + yy - 2 * xy)
    ours, _ = kernel_inception_distance(x, y[:30], subsets=1, subset_size=30)
    assert ours == pytest.approx(expected, rel=1e-9)


def test_inception_score_extremes() -> None:
    assert inception_score(torch.zeros(100, 10), splits=5)[0] == pytest.approx(1.0)
    confident = torch.full((100, 10), -50.0)
    confident[torch.arange(100), torch.arange(100) % 10] = 50.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)


class CountingExtractor(PixelExtractor):
    def __init__(self) -> None:
        self.images_seen = 0

    def __call__(self, images):
        self.images_seen += images.shape[0]
        return super().__call__(images)


def make_evaluator(plugins, tmp_path: Path, extractor, **params):
    registry = plugins.registry
    metrics = {name: (name, registry.create("metric", name, {"extractor": "pixels",
                                                             "n_fake": 300, "n_real": 400,
                                                             **params}))
               for name in ("fid", "kid")}
    dataset = registry.create("dataset", "digits", {"image_size": 32})
    table = {"use": "digits", "image_size": 32, "channels": 1}
    return Evaluator(metrics, dataset, table, torch.device("cpu"),
                     extractor_factory=lambda *a: extractor, cache_dir=tmp_path / "ref")


class RealDigits(torch.nn.Module):
    """A 'generator' that returns real digits: scores must be near zero."""

    latent_dim = 1

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images

    def sample_latent(self, n, generator, device=None):
        return torch.randint(len(self.images), (n, 1), generator=generator).float()

    def forward(self, z):
        return self.images[z[:, 0].long()]


class Blank(RealDigits):
    def forward(self, z):
        return torch.full((z.shape[0], 1, 32, 32), -1.0)


def test_evaluator_scores_protocol_and_cache(plugins, tmp_path: Path) -> None:
    extractor = CountingExtractor()
    evaluator = make_evaluator(plugins, tmp_path, extractor)
    digits = evaluator.dataset.images
    good = {r.label: r for r in evaluator.run(RealDigits(digits), step=7)}
    bad = {r.label: r for r in evaluator.run(Blank(digits))}
    assert good["fid"].value < 0.1 * bad["fid"].value
    assert good["kid"].value < 0.1 * bad["kid"].value
    protocol = good["fid"].protocol
    assert protocol["n_fake"] == 300 and protocol["n_real"] == 400
    assert protocol["extractor"] == "pixels-8x8" and protocol["step"] == 7
    assert protocol["dataset"] == {"use": "digits", "image_size": 32, "channels": 1}
    assert "300 fake vs 400 real images, pixels-8x8" in good["fid"].summary()
    # Real features were extracted once for both metrics and both runs: 400 real images,
    # and 300 fake images per run.
    assert extractor.images_seen == 400 + 300 + 300
    assert len(list((tmp_path / "ref").glob("*.safetensors"))) == 1
    again = CountingExtractor()
    fresh = make_evaluator(plugins, tmp_path, again)
    assert {r.label: r.value for r in fresh.run(RealDigits(digits))} == {
        "fid": good["fid"].value, "kid": good["kid"].value}
    assert again.images_seen == 300  # the reference came from the cache


def test_inception_score_needs_logits(plugins) -> None:
    metric = plugins.registry.create("metric", "inception_score", {"extractor": "pixels"})
    with pytest.raises(ValueError, match="needs an extractor with class logits"):
        metric.score(FeatureSet(torch.zeros(4, 2)), None)


def test_tf1_resize_equals_torch_fidelity() -> None:
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    from ganforge.evaluation.resize import resize_for_inception

    g = torch.Generator().manual_seed(0)
    for size in (32, 64, 100):
        images = torch.randint(0, 256, (2, 3, size, size), generator=g).float()
        ours = resize_for_inception(images, 299, "tf1")
        theirs = interpolate_bilinear_2d_like_tensorflow1x(images, size=(299, 299),
                                                           align_corners=False)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=5e-3)  # of 0..255
    antialiased = resize_for_inception(images, 299, "antialias")
    assert antialiased.shape == (2, 3, 299, 299)
    assert not torch.allclose(antialiased, ours, atol=1e-2)  # the two modes really differ
