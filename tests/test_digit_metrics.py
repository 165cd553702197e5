"""The digit metrics (``modes``, ``mode_kl``, ``digits_is``, ``class_accuracy``), the
``digits`` extractor and the ``stacked_digits`` dataset, checked against hand-computed cases
and against real digits."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.datasets.digits import DigitsDataset, StackedDigitsDataset
from ganforge.errors import UsageError
from ganforge.evaluation.digit_classifier import DigitClassifier, augmented, pooled
from ganforge.evaluation.digit_metrics import (
    ClassAccuracy,
    DigitsInceptionScore,
    ModeKL,
    Modes,
    joint_probabilities,
    kl_to_uniform,
    mode_ids,
)
from ganforge.evaluation.features import FeatureSet


def one_hot(digits: list[list[int]]) -> torch.Tensor:
    """Features of images whose channels certainly show ``digits`` (one row per image)."""
    p = torch.nn.functional.one_hot(torch.tensor(digits), 10).float()
    return p.flatten(1)


def params(cls: type, **values: object) -> object:
    return cls.Params(**values)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def classifier() -> DigitClassifier:
    return DigitClassifier(32)


def test_mode_ids_read_the_channels_as_one_number() -> None:
    p = one_hot([[3, 1, 4], [0, 0, 9], [9, 9, 9]]).reshape(3, 3, 10)
    assert mode_ids(p).tolist() == [314, 9, 999]
    assert mode_ids(one_hot([[7]]).reshape(1, 1, 10)).tolist() == [7]


def test_modes_counts_distinct_modes_with_min_count() -> None:
    fake = FeatureSet(one_hot([[1, 2, 3], [1, 2, 3], [4, 5, 6], [0, 0, 0]]))
    assert Modes(params(Modes)).score(fake, None) == (3.0, {"of": 1000.0})
    assert Modes(params(Modes, min_count=2)).score(fake, None)[0] == 1.0  # only 123 twice


def test_mode_kl_by_hand() -> None:
    # Two of four bins, equally: q = (1/2, 1/2, 0, 0) -> KL = ln 2 to uniform over 4.
    assert kl_to_uniform(torch.tensor([2, 2, 0, 0])) == pytest.approx(math.log(2))
    assert kl_to_uniform(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0)
    # One digit always, on one channel: KL = ln 10.
    fake = FeatureSet(one_hot([[4]] * 7))
    assert ModeKL(params(ModeKL)).score(fake, None)[0] == pytest.approx(math.log(10))
    # All 1,000 modes once each: 0.
    every = [[m // 100, m // 10 % 10, m % 10] for m in range(1000)]
    assert ModeKL(params(ModeKL)).score(FeatureSet(one_hot(every)), None)[0] == \
        pytest.approx(0.0, abs=1e-12)


def test_digits_is_by_hand() -> None:
    metric = DigitsInceptionScore(params(DigitsInceptionScore))
    # Every digit, each certain: IS = 10; one class only: IS = 1.
    assert metric.score(FeatureSet(one_hot([[d] for d in range(10)])), None)[0] == \
        pytest.approx(10.0)
    assert metric.score(FeatureSet(one_hot([[3]] * 5)), None)[0] == pytest.approx(1.0)
    # Two images: certain 0, and half 0 / half 1. p(y) = (3/4, 1/4).
    f = torch.zeros(2, 10)
    f[0, 0] = 1.0
    f[1, 0] = f[1, 1] = 0.5
    kl = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) / 2
    value, extra = metric.score(FeatureSet(f), None)
    assert value == pytest.approx(math.exp(kl))
    assert extra["min_share"] == 0.0 and extra["max_share"] == 1.0  # both predicted 0
    # Two channels: the joint class is the product, so 100 equally likely certain pairs
    # give 100.
    pairs = [[a, b] for a in range(10) for b in range(10)]
    assert metric.score(FeatureSet(one_hot(pairs)), None)[0] == pytest.approx(100.0)
    split = DigitsInceptionScore(params(DigitsInceptionScore, splits=2))
    value, extra = split.score(FeatureSet(one_hot([[0], [1], [2], [2]])), None)
    assert value == pytest.approx((2 + 1) / 2) and extra["std"] == pytest.approx(0.5)


def test_joint_probabilities_are_the_product() -> None:
    p = torch.rand(4, 2, 10, dtype=torch.float64).softmax(-1)
    joint = joint_probabilities(p)
    assert joint.shape == (4, 100)
    assert joint[2, 37].item() == pytest.approx((p[2, 0, 3] * p[2, 1, 7]).item())
    assert torch.allclose(joint.sum(1), torch.ones(4, dtype=torch.float64))


def test_class_accuracy_by_hand() -> None:
    metric = ClassAccuracy(params(ClassAccuracy))
    fake = FeatureSet(one_hot([[0], [0], [1], [2], [2], [2]]),
                      labels=torch.tensor([0, 1, 1, 2, 2, 0]))
    value, extra = metric.score(fake, None)
    # Class 0: 1 of 2; class 1: 1 of 2; class 2: 2 of 2.
    assert value == pytest.approx(4 / 6)
    assert extra == {"min_class": 0.5, "worst_class": 0.0}
    with pytest.raises(UsageError, match="not conditional"):
        metric.score(FeatureSet(one_hot([[0]])), None)


def test_digit_metrics_refuse_other_features() -> None:
    with pytest.raises(UsageError, match="extractor = 'digits'"):
        Modes(params(Modes)).score(FeatureSet(torch.randn(5, 2048)), None)
    with pytest.raises(UsageError, match="extractor = 'digits'"):
        DigitsInceptionScore(params(DigitsInceptionScore)).score(
            FeatureSet(torch.randn(5, 10)), None)


def test_classifier_knows_real_digits(classifier: DigitClassifier) -> None:
    data = DigitsDataset(DigitsDataset.Params())
    scores = classifier.score(data.images)
    assert scores.accuracy(data.targets.numpy()) > 0.99
    assert np.bincount(scores.predicted, minlength=10).min() > 150


def test_classifier_runs_sklearns_perceptron_in_torch() -> None:
    """The torch inference computes what scikit-learn's model predicts with the same
    weights (a quick fit on part of the training set: the weights are this test's; the
    shipped fit's accuracy is checked above)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    data = DigitsDataset(DigitsDataset.Params())
    images, targets = augmented(data.images, data.targets, 0)
    assert len(images) == 6 * len(data) and torch.equal(targets[len(data):2 * len(data)],
                                                         data.targets)
    model = MLPClassifier((256,), max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(pooled(images)[::4, 0].numpy(), targets[::4].numpy())
    ours = DigitClassifier.__new__(DigitClassifier)
    ours.image_size, ours.seed = 32, 0
    ours._weights = tuple(torch.from_numpy(w.astype(np.float32)) for w in model.coefs_)
    ours._biases = tuple(torch.from_numpy(b.astype(np.float32)) for b in model.intercepts_)
    noisy = (data.images[:300] + 0.3 * torch.randn(300, 1, 32, 32)).clamp(-1, 1)
    np.testing.assert_allclose(ours.probabilities(noisy)[:, 0].numpy(),
                               model.predict_proba(pooled(noisy)[:, 0].numpy()), atol=1e-5)


def test_the_fit_is_kept_in_the_user_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fitted once, then loaded by later processes; a cache file that cannot be read, or
    was fitted by another scikit-learn, is fitted again and replaced."""
    from ganforge.evaluation import digit_classifier as dc

    fits: list[int] = []

    def fake_fit(image_size: int, seed: int):
        fits.append(seed)
        rng = np.random.default_rng(seed + len(fits))
        return ([rng.normal(size=(64, 256)), rng.normal(size=(256, 10))],
                [rng.normal(size=256), rng.normal(size=10)])

    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(dc, "_fit", fake_fit)
    try:
        dc.fitted.cache_clear()
        first = dc.fitted(32, 5)
        path = tmp_path / "digit_classifier" / f"{dc.CLASSIFIER_NAME}-seed5-size32.safetensors"
        assert fits == [5] and path.is_file()
        dc.fitted.cache_clear()  # a new process
        again = dc.fitted(32, 5)
        assert fits == [5]
        assert all(torch.equal(a, b) for a, b in zip(first[0] + first[1], again[0] + again[1],
                                                      strict=True))
        path.write_bytes(b"not a safetensors file")
        dc.fitted.cache_clear()
        refitted = dc.fitted(32, 5)
        assert fits == [5, 5] and not torch.equal(refitted[0][0], first[0][0])
        dc.fitted.cache_clear()
        assert torch.equal(dc.fitted(32, 5)[0][0], refitted[0][0]) and fits == [5, 5]
        key = dc.cache_key(32, 5)
        monkeypatch.setattr(dc, "cache_key", lambda size, seed: {**key, "sklearn": "0.0"})
        dc.fitted.cache_clear()
        dc.fitted(32, 5)
        assert fits == [5, 5, 5]
    finally:
        dc.fitted.cache_clear()  # later tests get the real fit (from the session's cache)


def test_stacked_digits_is_deterministic_and_labelled(classifier: DigitClassifier) -> None:
    a = StackedDigitsDataset(StackedDigitsDataset.Params(size=500, seed=3))
    b = StackedDigitsDataset(StackedDigitsDataset.Params(size=500, seed=3))
    c = StackedDigitsDataset(StackedDigitsDataset.Params(size=500, seed=4))
    assert torch.equal(a.picks, b.picks) and not torch.equal(a.picks, c.picks)
    assert a.image_spec.channels == 3 and a.image_spec.classes == 1000 and len(a) == 500
    image, mode = a[17]
    assert image.shape == (3, 32, 32) and image.min() >= -1 and image.max() <= 1
    digits = DigitsDataset(DigitsDataset.Params())
    for channel in range(3):
        assert torch.equal(image[channel], digits.images[a.picks[17, channel], 0])
    expected = [int(digits.targets[a.picks[17, ch]]) for ch in range(3)]
    assert mode == expected[0] * 100 + expected[1] * 10 + expected[2]


def test_real_stacked_digits_cover_every_mode(classifier: DigitClassifier) -> None:
    """The protocol on the data itself: 26,000 real stacked digits cover (nearly) all 1,000
    modes, close to uniformly, and the classifier reads their modes right."""
    data = StackedDigitsDataset(StackedDigitsDataset.Params(size=26_000))
    images = torch.stack([data.digits[data.picks[:, c]] for c in range(3)], dim=1)
    fake = FeatureSet(classifier.probabilities(images).flatten(1))
    modes = Modes(params(Modes)).score(fake, None)[0]
    kl = ModeKL(params(ModeKL)).score(fake, None)[0]
    assert modes >= 995, modes
    assert kl < 0.05, kl
    predicted = mode_ids(fake.features.double().reshape(-1, 3, 10))
    assert (predicted == data.targets).double().mean() > 0.97


def test_eval_command_scores_digit_metrics(quickstart_run, tmp_path) -> None:
    checkpoint = quickstart_run / "checkpoints" / "step-0000500.safetensors"
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "-m", "digits_is",
                                      "-m", "modes", "--n", "2000", "--json"])
    assert result.exit_code == 0, result.output
    by_metric, text, decoder = {}, result.stdout, json.JSONDecoder()
    while text.strip():
        row, end = decoder.raw_decode(text.lstrip())
        by_metric[row["metric"]] = row
        text = text.lstrip()[end:]
    assert 3.0 < by_metric["digits_is"]["value"] <= 10.0
    assert by_metric["digits_is"]["protocol"]["extractor"].startswith("digits-mlp256-v2")
    assert 5 <= by_metric["modes"]["value"] <= 10


def test_digits_is_in_chunks_equals_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The joint probabilities are formed a chunk at a time (bounded memory): same score."""
    from ganforge.evaluation import digit_metrics

    p = torch.rand(50, 2, 10, dtype=torch.float64).softmax(-1)
    joint = joint_probabilities(p)
    marginal = joint.mean(0)
    direct = math.exp(float((joint * (joint.log() - marginal.log())).sum(1).mean()))
    monkeypatch.setattr(digit_metrics, "JOINT_CHUNK", 7)
    assert digit_metrics.inception_score_of(p, 1)[0] == pytest.approx(direct, rel=1e-12)
