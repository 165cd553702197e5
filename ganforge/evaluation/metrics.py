"""The built-in metrics: ``fid``, ``kid`` and ``inception_score``."""

from __future__ import annotations

from typing import Any

import attrs

from ..core.errors import UsageError
from ..core.interfaces import Metric
from ..core.params import at_most, param
from .features import FeatureSet
from .resize import RESIZE_MODES
from .statistics import (
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mean_and_covariance,
)

_positive = attrs.validators.gt(0)

#: The most images a metric generates or reads (``n_fake``, ``n_real``, and ``ganforge
#: eval``'s counts): 20 times the largest published protocol (50,000), and still hours of
#: work; a count without a ceiling allocates and runs until the machine gives out.
MAX_IMAGES = 1_000_000

#: The most images per extraction batch, and the most subsets or splits averaged.
MAX_BATCH = 65_536
MAX_SPLITS = 10_000

#: The validator of every image count.
image_count = [_positive, at_most(MAX_IMAGES)]


@attrs.frozen
class MetricParams:
    """What every metric shares: how many images, and which features."""

    n_fake: int = param(10_000, "generated images (published FIDs mostly use 50,000; at "
                        f"most {MAX_IMAGES:,})", validator=image_count)
    n_real: int = param(10_000, "real images (capped at the dataset's size; at most "
                        f"{MAX_IMAGES:,})", validator=image_count)
    extractor: str = param("inception", "registered feature extractor: 'inception' (the FID "
                           "network), 'pixels' (8x8 pixels: smoke tests only, not "
                           "comparable) or a plugin's (ganforge components extractor)",
                           validator=attrs.validators.min_len(1))
    extractor_params: dict[str, Any] = param(
        attrs.Factory(dict), "the extractor's params (ganforge components extractor NAME); "
        "for inception, inception_weights, download and resize below are its defaults")
    inception_weights: str | None = param(None, "path of pt_inception-2015-12-05-6726825d.pth;"
                                          " unset: the user cache")
    download: bool = param(False, "fetch the Inception weights into the cache if missing")
    resize: str = param("antialias", "to 299x299 as a tool does it: 'antialias' "
                        "(torchmetrics' default), 'tf1' (TF FID, torch-fidelity, mimicry, "
                        "StudioGAN), 'clean' (clean-fid) or 'pytorch_fid'",
                        validator=attrs.validators.in_(RESIZE_MODES))
    batch_size: int = param(100, "images per extraction batch", validator=[
        _positive, at_most(MAX_BATCH)])
    seed: int = param(0, "seed of the generated latents and of the real-image selection")
    protocol_images: int | None = param(
        None, "images of the published protocol this score follows (e.g. 50000): scoring "
        "fewer generated or real images is warned about, since the numbers are not "
        "comparable", validator=attrs.validators.optional(image_count))

    def __attrs_post_init__(self) -> None:
        # The ceiling again, for a subclass that redeclares a count with a validator of its
        # own (a field's validator replaces the inherited one).
        for name in ("n_fake", "n_real"):
            at_most(MAX_IMAGES)(self, attrs.fields_dict(type(self))[name], getattr(self, name))

    def extractor_table(self) -> dict[str, Any]:
        """The params of :attr:`extractor` as a recipe table: ``extractor_params``, over
        ``inception_weights``/``download``/``resize`` for the built-in ``inception``."""
        table: dict[str, Any] = {}
        if self.extractor in ("inception", "ganforge:inception"):
            table = {"download": self.download, "resize": self.resize}
            if self.inception_weights is not None:
                table["weights"] = self.inception_weights
        return {**table, **self.extractor_params}


class FID(Metric):
    """Fréchet Inception Distance between generated and real images (lower is better)."""

    @attrs.frozen
    class Params(MetricParams):
        """Real images, or imported reference statistics."""

        reference_stats: str | None = param(
            None, "a .npz of the real features' mu and sigma as pytorch-fid and clean-fid "
            "write them, used instead of the dataset's images; it must come from the same "
            "extractor and resize (e.g. inception with resize = 'clean' for clean-fid's)")

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self._stats: tuple[Any, Any] | None = None
        self._file: dict[str, Any] | None = None

    def uses_real_images(self) -> bool:
        return self.params.reference_stats is None

    def reference_file(self) -> dict[str, Any] | None:
        if self.params.reference_stats is None:
            return None
        self._load_stats()
        return self._file

    def _load_stats(self) -> tuple[Any, Any]:
        if self._stats is None:
            import hashlib
            from pathlib import Path

            from .npz_stats import load_reference_npz

            path = Path(self.params.reference_stats).expanduser().resolve()
            self._stats = load_reference_npz(path)
            self._file = {"file": str(path),
                          "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        return self._stats

    def score(self, fake: FeatureSet, real: FeatureSet | None) -> tuple[float, dict[str, float]]:
        import torch

        mu1, s1 = mean_and_covariance(fake.features)
        if self.params.reference_stats is not None:
            mu, sigma = self._load_stats()
            if mu.shape[0] != mu1.shape[0]:
                raise UsageError(f"reference_stats {self.params.reference_stats}: features of "
                                 f"{mu.shape[0]} dimensions, but the extractor gives "
                                 f"{mu1.shape[0]}")
            mu2 = torch.from_numpy(mu).to(mu1)
            s2 = torch.from_numpy(sigma).to(s1)
        else:
            assert real is not None
            mu2, s2 = mean_and_covariance(real.features)
        return frechet_distance(mu1, s1, mu2, s2), {}


class KID(Metric):
    """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 (lower is better)."""

    @attrs.frozen
    class Params(MetricParams):
        """Subset sampling of the estimator."""

        subsets: int = param(100, "random subsets averaged",
                             validator=[_positive, at_most(MAX_SPLITS)])
        subset_size: int = param(1000, "vectors per subset",
                                 validator=[attrs.validators.gt(1), at_most(MAX_IMAGES)])

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

        splits: int = param(10, "splits averaged", validator=[_positive, at_most(MAX_SPLITS)])

    def score(self, fake: FeatureSet, real: FeatureSet | None) -> tuple[float, dict[str, float]]:
        if fake.logits is None:
            raise ValueError("the Inception Score needs an extractor with class logits "
                             "(extractor = 'inception')")
        mean, std = inception_score(fake.logits, self.params.splits)
        return mean, {"std": std}
