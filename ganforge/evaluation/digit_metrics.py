"""The digit metrics: mode coverage on stacked digits, the "MNIST Inception Score", and
how often a conditional generator draws the class it is asked for. All read the ``digits``
extractor's per-channel digit probabilities (:mod:`ganforge.evaluation.digit_classifier`),
need no real images and no download.

- ``modes``: how many of the ``10^C`` modes (digit combinations over the ``C`` channels; 1,000
  for stacked digits) at least ``min_count`` of the ``n_fake`` generated images fall in. The
  Stacked MNIST protocol of VEEGAN and PacGAN: 26,000 images, a mode counted once seen.
- ``mode_kl``: KL divergence of the generated mode histogram ``q`` to the uniform
  distribution over the ``10^C`` modes, ``sum_m q_m ln(q_m 10^C)`` (natural log; empty modes
  add nothing), as PacGAN computes it ("reverse KL").
- ``digits_is``: ``exp(E_x KL(p(y|x) || p(y)))`` with ``y`` the joint digits of the channels
  (the product of the channels' probabilities), ``p(y)`` the mean over the images of a split;
  extras ``min_share`` and ``max_share``: the least and most frequent predicted class's share
  of the images.
- ``class_accuracy``: for a conditional generator, the share of generated images whose
  predicted class (the mode) is the class they were drawn with; extras ``min_class`` (the
  worst class's accuracy) and ``worst_class``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..core.errors import UsageError
from ..core.interfaces import Metric
from ..core.params import param
from .digit_classifier import DIGITS
from .features import FeatureSet
from .metrics import MetricParams, image_count

_positive = attrs.validators.gt(0)
#: At most this many channels: 10^3 joint classes (stacked digits' 1,000 modes).
MAX_CHANNELS = 3


def channel_probabilities(fake: FeatureSet, metric: str) -> torch.Tensor:
    """The extractor's features as per-channel digit probabilities ``(N, C, 10)``; one
    UsageError line when the features are not the ``digits`` extractor's."""
    features = fake.features
    width = features.shape[1] if features.dim() == 2 else 0
    if width % DIGITS or not 0 < width // DIGITS <= MAX_CHANNELS or \
            bool((features < 0).any()) or bool((features > 1.0 + 1e-4).any()):
        raise UsageError(f"metric {metric}: needs the digit classifier's probabilities "
                         f"(extractor = 'digits'), got features of shape "
                         f"{tuple(features.shape)}")
    return features.double().reshape(features.shape[0], -1, DIGITS)


def mode_ids(probabilities: torch.Tensor) -> torch.Tensor:
    """Each image's mode: its channels' predicted digits read as one base-10 number
    (``100 * d_0 + 10 * d_1 + d_2`` for three channels)."""
    digits = probabilities.argmax(dim=-1)
    channels = digits.shape[1]
    weights = torch.tensor([DIGITS ** (channels - 1 - c) for c in range(channels)])
    return (digits * weights).sum(dim=1)


def joint_probabilities(probabilities: torch.Tensor) -> torch.Tensor:
    """``(N, 10^C)``: the probability of each joint class (the mode numbering of
    :func:`mode_ids`), the product of the channels' independent probabilities."""
    joint = probabilities[:, 0]
    for c in range(1, probabilities.shape[1]):
        joint = (joint[:, :, None] * probabilities[:, c, None, :]).flatten(1)
    return joint


def mode_histogram(modes: torch.Tensor, channels: int) -> torch.Tensor:
    """How many images fall in each of the ``10^channels`` modes."""
    return torch.bincount(modes, minlength=DIGITS ** channels)


def kl_to_uniform(counts: torch.Tensor) -> float:
    """``KL(q || uniform)`` of the histogram ``counts`` over its bins, natural log."""
    q = counts.double() / counts.sum()
    seen = q[q > 0]
    return float((seen * torch.log(seen * counts.numel())).sum())


#: Images whose joint class probabilities (up to 1,000 per image) are held at once.
JOINT_CHUNK = 8192


def inception_score_of(probabilities: torch.Tensor, splits: int) -> tuple[float, float]:
    """Mean and standard deviation over ``splits`` of ``exp(E KL(p(y|x) || p(y)))``, ``y``
    the joint class of per-channel probabilities ``(N, C, 10)`` (:func:`joint_probabilities`,
    formed :data:`JOINT_CHUNK` images at a time so memory stays bounded)."""
    scores = []
    for part in probabilities.chunk(splits):
        chunks = part.split(JOINT_CHUNK)
        marginal = torch.stack([joint_probabilities(c).sum(dim=0) for c in chunks]).sum(0)
        log_marginal = torch.log(marginal / len(part))
        kl = 0.0
        for c in chunks:
            joint = joint_probabilities(c)
            kl += float(torch.where(joint > 0, joint * (torch.log(joint) - log_marginal),
                                    0.0).sum())
        scores.append(math.exp(kl / len(part)))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False))


def example_digit_features(n: int, generator: torch.Generator, channels: int = 3,
                           labelled: bool = False) -> FeatureSet:
    """Random per-channel digit probabilities of ``n`` images, as the ``digits`` extractor
    gives them (and, when ``labelled``, the classes they were drawn with): what the
    contract kit scores the digit metrics on."""
    logits = torch.randn(n, channels, DIGITS, generator=generator, dtype=torch.float64)
    labels = (torch.randint(DIGITS ** channels, (n,), generator=generator)
              if labelled else None)
    return FeatureSet(logits.softmax(-1).flatten(1).float(), labels=labels)


class DigitMetric(Metric):
    """What the digit metrics share: no real images, the digit classifier's features."""

    needs_real = False

    @classmethod
    def example_features(cls, n: int, generator: torch.Generator) -> FeatureSet:
        return example_digit_features(n, generator)


@attrs.frozen
class DigitMetricParams(MetricParams):
    """The digit metrics' defaults: the ``digits`` extractor."""

    extractor: str = param("digits", "registered feature extractor: the digit classifier "
                           "('digits') or a plugin's with the same output (probabilities of "
                           "the ten digits per channel)", validator=attrs.validators.min_len(1))


class Modes(DigitMetric):
    """Modes covered: digit combinations (1,000 for stacked digits) that at least
    ``min_count`` generated images fall in (higher is better)."""

    higher_is_better = True

    @attrs.frozen
    class Params(DigitMetricParams):
        """Stacked MNIST's protocol: 26,000 images, a mode counted once seen."""

        n_fake: int = param(26_000, "generated images (26,000 in VEEGAN's and PacGAN's "
                            "Stacked MNIST protocol)", validator=image_count)
        min_count: int = param(1, "images a mode needs to count as covered",
                               validator=_positive)

    def score(self, fake: FeatureSet, real: Any) -> tuple[float, dict[str, float]]:
        p = channel_probabilities(fake, "modes")
        counts = mode_histogram(mode_ids(p), p.shape[1])
        return float((counts >= self.params.min_count).sum()), {"of": float(counts.numel())}


class ModeKL(DigitMetric):
    """KL divergence of the generated mode histogram to uniform (lower is better)."""

    @attrs.frozen
    class Params(DigitMetricParams):
        """Stacked MNIST's protocol: 26,000 images."""

        n_fake: int = param(26_000, "generated images (26,000 in VEEGAN's and PacGAN's "
                            "Stacked MNIST protocol)", validator=image_count)

    def score(self, fake: FeatureSet, real: Any) -> tuple[float, dict[str, float]]:
        p = channel_probabilities(fake, "mode_kl")
        return kl_to_uniform(mode_histogram(mode_ids(p), p.shape[1])), {}


class DigitsInceptionScore(DigitMetric):
    """The "MNIST Inception Score" from the digit classifier (higher is better; 10 at most
    for one channel)."""

    higher_is_better = True

    @attrs.frozen
    class Params(DigitMetricParams):
        """Splits of the generated set."""

        splits: int = param(1, "splits averaged (1: the score of the whole set)",
                            validator=_positive)

    def score(self, fake: FeatureSet, real: Any) -> tuple[float, dict[str, float]]:
        p = channel_probabilities(fake, "digits_is")
        mean, std = inception_score_of(p, self.params.splits)
        shares = mode_histogram(mode_ids(p), p.shape[1]).double() / len(fake)
        return mean, {"std": std, "min_share": float(shares.min()),
                      "max_share": float(shares.max())}


class ClassAccuracy(DigitMetric):
    """Share of a conditional generator's images classified as the class they were drawn
    with (higher is better)."""

    higher_is_better = True

    @attrs.frozen
    class Params(DigitMetricParams):
        """Images generated, classes drawn uniformly."""

    @classmethod
    def example_features(cls, n: int, generator: torch.Generator) -> FeatureSet:
        return example_digit_features(n, generator, labelled=True)

    def score(self, fake: FeatureSet, real: Any) -> tuple[float, dict[str, float]]:
        if fake.labels is None:
            raise UsageError("metric class_accuracy: the generator is not conditional (it "
                             "draws no class to check)")
        p = channel_probabilities(fake, "class_accuracy")
        hits = (mode_ids(p) == fake.labels.cpu()).double()
        classes = int(fake.labels.max()) + 1
        per_class = torch.zeros(classes, dtype=torch.float64).index_add_(0, fake.labels, hits)
        drawn = torch.bincount(fake.labels, minlength=classes).double()
        accuracy = per_class[drawn > 0] / drawn[drawn > 0]
        worst = int(torch.nonzero(drawn > 0)[int(accuracy.argmin())])
        return float(hits.mean()), {"min_class": float(accuracy.min()),
                                    "worst_class": float(worst)}
