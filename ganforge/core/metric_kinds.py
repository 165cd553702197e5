"""The evaluation kinds: :class:`FeatureExtractor` (images to feature vectors) and
:class:`Metric` (a score from feature sets), and :class:`FeatureSet`, the features a metric
is given. Re-exported by :mod:`ganforge.core.interfaces` with the other kinds' bases."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs
import torch

from .components import Component

T = TypeVar("T")


@attrs.frozen(eq=False)
class FeatureSet:
    """Features (and, when the extractor has them, class logits) of a set of images.

    Compared by identity, and with a memo for what metrics derive from it: the metrics of
    one evaluation get the same ``head(n)`` object, so what one computes (k-NN radii,
    say) the next one reuses (:meth:`memoized`)."""

    features: torch.Tensor
    logits: torch.Tensor | None = None
    #: The class each generated image was drawn with (a conditional generator's labels),
    #: else None.
    labels: torch.Tensor | None = None
    _memo: dict[Any, Any] = attrs.field(factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return self.features.shape[0]

    def head(self, n: int) -> FeatureSet:
        """The first ``n`` images' features (the same object for the same ``n``)."""
        if n >= len(self):
            return self

        def first() -> FeatureSet:
            logits = None if self.logits is None else self.logits[:n]
            labels = None if self.labels is None else self.labels[:n]
            return FeatureSet(self.features[:n], logits, labels)

        return self.memoized(("head", n), first)

    def memoized(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, once per ``key`` for this set (features are never changed)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class FeatureExtractor(Component):
    """Maps images to feature vectors for metrics (the ``extractor`` kind): the FID
    Inception network (``inception``), raw pixels (``pixels``), or a plugin's network
    (DINOv2, CLIP, ...) with its own pinned weights.

    A metric names its extractor (``extractor = "inception"``; a plugin's params in
    ``extractor_params``), and the evaluation driver builds one extractor per distinct
    (name, params), calls :meth:`load` once, and extracts the features of each image set
    once for every metric that shares it. :attr:`name` and :attr:`resize` are recorded in
    every score's protocol, and :attr:`name` is part of the key of cached real-image
    features: it must change whenever the weights or the preprocessing change (put the
    weights' version or hash in it).
    """

    #: True when :meth:`__call__` also returns class logits (the Inception Score needs them).
    has_logits: ClassVar[bool] = False

    def __init__(self, params: Any) -> None:
        self.params = params

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The protocol's name of the network, its weights and its preprocessing, e.g.
        ``fid-inception-2015-12-05/tf1``."""

    @property
    def resize(self) -> str:
        """How images are brought to the network's input size, for the protocol."""
        return "none"

    def load(self, device: torch.device) -> None:  # noqa: B027 - optional, empty by design
        """Load the weights onto ``device`` (called once, before the first images). Nothing
        may be downloaded unless the params allow it; a missing file is one clear line
        naming it. Default: nothing to load."""

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features ``(N, D)`` (float, on any device) of images ``(N, C, H, W)`` in
        [-1, 1], and class logits ``(N, K)`` when :attr:`has_logits`, else None."""


class Metric(Component):
    """Scores generated images, usually against real ones, from extracted features.

    ``Params`` must subclass :class:`ganforge.evaluation.metrics.MetricParams` (how many
    images, which feature extractor). The evaluation driver extracts features once per
    extractor and passes them to :meth:`score`.
    """

    #: True when larger values are better (Inception Score), False for distances.
    higher_is_better: ClassVar[bool] = False
    #: Whether :meth:`score` needs real-image features.
    needs_real: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def score(self, fake: Any, real: Any) -> tuple[float, dict[str, float]]:
        """The metric's value and any extra figures (e.g. a standard deviation), from
        ``FeatureSet`` objects of generated and (if ``needs_real``) real images."""

    def uses_real_images(self) -> bool:
        """Whether this instance needs real-image features (default: :attr:`needs_real`;
        FID with imported reference statistics needs none)."""
        return self.needs_real

    def reference_file(self) -> dict[str, Any] | None:
        """The reference statistics file this instance compares with instead of real
        images, for the protocol (``{"file": ..., "sha256": ...}``); default None."""
        return None

    @classmethod
    def example_features(cls, n: int, generator: torch.Generator) -> Any:
        """``n`` images' features as this metric's extractor gives them, for the contract
        kit (``ganforge.testing``) to score: a ``FeatureSet``. Default: random
        16-dimensional vectors with 10 class logits; a metric that reads one extractor's
        output (the digit metrics read digit probabilities) returns features like it."""
        return FeatureSet(torch.randn(n, 16, generator=generator, dtype=torch.float64),
                          torch.randn(n, 10, generator=generator, dtype=torch.float64))


#: Base class of each kind, used by the registry to reject non-components.
