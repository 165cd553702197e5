"""The built-in metrics: ``fid``, ``kid`` and ``inception_score``."""

from __future__ import annotations

import attrs

from ..interfaces import Metric
from ..params import param
from .features import FeatureSet
from .statistics import (
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mean_and_covariance,
)

_positive = attrs.validators.gt(0)


@attrs.frozen
class MetricParams:
    """What every metric shares: how many images, and which features."""

    n_fake: int = param(10_000, "generated images (published FIDs mostly use 50,000)",
                        validator=_positive)
    n_real: int = param(10_000, "real images (capped at the dataset's size)",
                        validator=_positive)
    extractor: str = param("inception", "'inception' (standard FID network) or 'pixels' "
                           "(8x8 pixels: smoke tests only, not comparable)",
                           validator=attrs.validators.in_(["inception", "pixels"]))
    inception_weights: str | None = param(None, "path of pt_inception-2015-12-05-6726825d.pth;"
                                          " unset: the user cache")
    download: bool = param(False, "fetch the Inception weights into the cache if missing")
    resize: str = param("antialias", "to 299x299: 'antialias' (torchmetrics' default) or "
                        "'tf1' (TensorFlow 1 bilinear, as torch-fidelity and the TF FID code)",
                        validator=attrs.validators.in_(["antialias", "tf1"]))
    batch_size: int = param(100, "images per extraction batch", validator=_positive)
    seed: int = param(0, "seed of the generated latents and of the real-image selection")


class FID(Metric):
    """Fréchet Inception Distance between generated and real images (lower is better)."""

    @attrs.frozen
    class Params(MetricParams):
        """FID has no parameters of its own."""

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        mu1, s1 = mean_and_covariance(fake.features)
        mu2, s2 = mean_and_covariance(real.features)
        return frechet_distance(mu1, s1, mu2, s2), {}


class KID(Metric):
    """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 (lower is better)."""

    @attrs.frozen
    class Params(MetricParams):
        """Subset sampling of the estimator."""

        subsets: int = param(100, "random subsets averaged", validator=_positive)
        subset_size: int = param(1000, "vectors per subset", validator=attrs.validators.gt(1))

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        p = self.params
        mean, std = kernel_inception_distance(fake.features, real.features, p.subsets,
                                              p.subset_size, p.seed)
        return mean, {"std": std}


class InceptionScore(Metric):
    """Inception Score of generated images (higher is better); needs no real images."""

    higher_is_better = True
    needs_real = False

    @attrs.frozen
    class Params(MetricParams):
        """Splits of the generated set."""

        splits: int = param(10, "splits averaged", validator=_positive)

    def score(self, fake: FeatureSet, real: FeatureSet | None) -> tuple[float, dict[str, float]]:
        if fake.logits is None:
            raise ValueError("the Inception Score needs an extractor with class logits "
                             "(extractor = 'inception')")
        mean, std = inception_score(fake.logits, self.params.splits)
        return mean, {"std": std}
