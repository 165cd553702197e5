"""Checks of metrics (params, a finite score, determinism) and of feature extractors
(features and logits of every size and channel count, determinism)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

from .report import fail

# -- metrics --------------------------------------------------------------------------------


def _features(metric: Any, seed: int, n: int = 64) -> Any:
    """What the metric's extractor would give for ``n`` images (``Metric.example_features``;
    random 16-dimensional vectors with 10 class logits unless the metric says otherwise)."""
    return type(metric).example_features(n, torch.Generator().manual_seed(seed))


def check_metric_params(params: Any) -> None:
    """``Params`` subclasses :class:`ganforge.evaluation.metrics.MetricParams` (the
    evaluation driver reads ``n_fake``, ``extractor``, ...)."""
    from ..evaluation.metrics import MetricParams

    if not isinstance(params, MetricParams):
        raise fail("Params must subclass ganforge.evaluation.metrics.MetricParams")


def _score(metric: Any) -> tuple[float, dict[str, float]]:
    real = _features(metric, 1) if metric.needs_real else None
    result = metric.score(_features(metric, 0), real)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise fail(f"score() returned {type(result).__name__}, not (value, extras)")
    value, extras = result
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise fail(f"score() value {value!r} is not a finite float")
    if not isinstance(extras, dict) or not all(
            isinstance(k, str) and isinstance(v, numbers.Real) and math.isfinite(v)
            for k, v in extras.items()):
        raise fail(f"score() extras {extras!r} are not a dict of finite floats")
    return float(value), {k: float(v) for k, v in extras.items()}


def exercise_metric(metric: Any) -> None:
    """Score random features once (for the component state check)."""
    _score(metric)


def check_metric_score(metric: Any) -> None:
    """``score`` on 64 images' features (``Metric.example_features``: by default random
    16-dimensional vectors with 10 class logits) gives a finite value and a dict of finite
    extras."""
    _score(metric)


def check_metric_determinism(make: Callable[[], Any]) -> None:
    """Two fresh instances score the same features the same."""
    if _score(make()) != _score(make()):
        raise fail("the same features give another score")


# -- feature extractors ----------------------------------------------------------------------

def _extractor_output(extractor: Any, size: int, channels: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(size * 10 + channels)
    images = torch.rand(4, channels, size, size, generator=gen) * 2 - 1
    extractor.load(torch.device("cpu"))
    result = extractor(images)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise fail(f"__call__ returned {type(result).__name__}, not (features, logits)")
    return result


def check_extractor_features(extractor: Any, sizes: list[int], channels: list[int]) -> None:
    """``name`` and ``resize`` are non-empty strings (the protocol records them); 4 images
    in [-1, 1] of each size and channel count give finite float features ``(4, D)``, ``D``
    the same for every size of one channel count, and class logits ``(4, K)`` exactly when
    ``has_logits``."""
    for attribute in ("name", "resize"):
        value = getattr(extractor, attribute, None)
        if not isinstance(value, str) or not value:
            raise fail(f"{attribute} must be a non-empty string, got {value!r}")
    for c in channels:
        dims = set()
        for size in sizes:
            features, logits = _extractor_output(extractor, size, c)
            if not (isinstance(features, torch.Tensor) and features.dim() == 2
                    and features.shape[0] == 4 and features.is_floating_point()):
                raise fail(f"{c}x{size}x{size} images: features must be a float (4, D) "
                           f"tensor, got {getattr(features, 'shape', type(features))}")
            if not torch.isfinite(features).all():
                raise fail(f"{c}x{size}x{size} images: non-finite features")
            dims.add(features.shape[1])
            if extractor.has_logits != (logits is not None):
                raise fail(f"has_logits is {extractor.has_logits} but the logits are "
                           f"{'missing' if logits is None else 'there'}")
            if logits is not None and not (logits.dim() == 2 and logits.shape[0] == 4):
                raise fail(f"logits must be (4, K), got {tuple(logits.shape)}")
        if len(dims) != 1:
            raise fail(f"{c}-channel images: the feature dimension depends on the image "
                       f"size: {sorted(dims)}")


def check_extractor_determinism(make: Callable[[], Any], size: int, channels: int) -> None:
    """Two fresh instances give the same features for the same images."""
    first, _ = _extractor_output(make(), size, channels)
    second, _ = _extractor_output(make(), size, channels)
    if not torch.equal(first, second):
        raise fail("the same images give other features")


def exercise_extractor(extractor: Any) -> None:
    """Extract the features of 4 random images once (for the component state check)."""
    _extractor_output(extractor, 32, 3)
