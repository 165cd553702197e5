"""Running metrics on a generator: fake and real features, reference cache, protocol.

Features are extracted once per extractor and shared by every metric that uses it (the
largest ``n_fake``/``n_real`` asked for is computed; each metric takes the first images it
needs). Real-image features are cached in ``<user cache>/reference/`` as safetensors, keyed
by the dataset's resolved params, the extractor, the number of images and the selection
seed, so a run's evaluations and later ``ganforge eval`` calls compute them once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..cache import user_cache_dir
from ..datasets.decoding import BadImage
from ..datasets.policy import Skipped
from ..errors import DataError
from ..interfaces import Dataset, Generator, Metric
from ..structuring import unstructure_params
from ..training.samples import generate
from .features import FeatureExtractor, FeatureSet, make_extractor

CACHE_VERSION = 1


@attrs.frozen
class MetricResult:
    """One score and the protocol that produced it."""

    label: str
    metric: str
    value: float
    higher_is_better: bool
    extra: dict[str, float]
    protocol: dict[str, Any]

    def summary(self) -> str:
        """``fid 23.4125 (10000 fake vs 10000 real images, <extractor>, <dataset>)``."""
        p = self.protocol
        extra = "".join(f" {k} {v:.4g}" for k, v in self.extra.items())
        real = f" vs {p['n_real']} real" if p.get("n_real") else ""
        return (f"{self.label} {self.value:.4f}{extra} ({p['n_fake']} fake{real} images, "
                f"{p['extractor']}, resize {p['resize']}, dataset {p['dataset']['use']})")


def _key(dataset_table: Mapping[str, Any], extractor: str, n: int, seed: int) -> dict[str, Any]:
    return {"version": CACHE_VERSION, "dataset": dict(dataset_table), "extractor": extractor,
            "n": n, "seed": seed}


def _cache_path(key: Mapping[str, Any], root: Path | None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return (root or user_cache_dir("reference")) / f"{digest}.safetensors"


def _load_cached(path: Path, key: Mapping[str, Any]) -> torch.Tensor | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            if json.loads((f.metadata() or {}).get("key", "null")) != key:
                return None
            return f.get_tensor("features")
    except (OSError, SafetensorError, ValueError):
        return None


def _store(path: Path, key: Mapping[str, Any], features: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"features": features.contiguous()}, tmp,
              metadata={"key": json.dumps(key, sort_keys=True)})
    os.replace(tmp, path)


def _extract(extractor: FeatureExtractor, images: torch.Tensor, batch: list, logits: list) -> None:
    features, class_logits = extractor(images)
    batch.append(features.float().cpu())
    if class_logits is not None:
        logits.append(class_logits.float().cpu())


def fake_features(generator: Generator, extractor: FeatureExtractor, n: int, batch_size: int,
                  seed: int, device: torch.device) -> FeatureSet:
    """Features of ``n`` generated images from latents drawn with ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        z = generator.sample_latent(size, rng, "cpu").to(device)
        _extract(extractor, generate(generator, z), features, logits)
    return FeatureSet(torch.cat(features), torch.cat(logits) if logits else None)


def real_features(dataset: Dataset, dataset_table: Mapping[str, Any],
                  extractor: FeatureExtractor, n: int, batch_size: int, seed: int,
                  cache_dir: Path | None = None) -> FeatureSet:
    """Features of ``n`` real images (a seeded selection; bad images passed over), cached."""
    n = min(n, len(dataset))
    key = _key(dataset_table, extractor.name, n, seed)
    path = _cache_path(key, cache_dir)
    cached = _load_cached(path, key) if path.exists() else None
    if cached is not None:
        return FeatureSet(cached)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    features: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    taken = 0
    for index in order.tolist():
        try:
            item = dataset[index]
        except BadImage:
            continue
        if isinstance(item, Skipped):
            continue
        pending.append(item)
        taken += 1
        if len(pending) == batch_size or taken == n:
            _extract(extractor, torch.stack(pending), features, [])
            pending = []
        if taken == n:
            break
    if taken < 2:
        raise DataError("evaluation: fewer than 2 readable real images")
    result = torch.cat(features)
    _store(path, key, result)
    return FeatureSet(result)


ExtractorFactory = Callable[[str, str | None, bool, torch.device, str], FeatureExtractor]


class Evaluator:
    """Scores generators with a fixed set of metrics against one dataset.

    Extractors (the Inception network is ~100 MB) and real features are kept between
    calls, so evaluating every N steps during training pays for them once.
    """

    def __init__(self, metrics: Mapping[str, tuple[str, Metric]], dataset: Dataset,
                 dataset_table: Mapping[str, Any], device: torch.device,
                 extractor_factory: ExtractorFactory = make_extractor,
                 cache_dir: Path | None = None) -> None:
        self.metrics = dict(metrics)
        self.dataset = dataset
        self.dataset_table = dict(dataset_table)
        self.device = device
        self.extractor_factory = extractor_factory
        self.cache_dir = cache_dir
        self._extractors: dict[tuple, FeatureExtractor] = {}
        self._real: dict[tuple, FeatureSet] = {}

    def _extractor(self, p: Any) -> FeatureExtractor:
        key = (p.extractor, p.inception_weights, p.resize)
        if key not in self._extractors:
            self._extractors[key] = self.extractor_factory(p.extractor, p.inception_weights,
                                                           p.download, self.device, p.resize)
        return self._extractors[key]

    def run(self, generator: Generator, step: int | None = None) -> list[MetricResult]:
        """Every metric's result for ``generator`` (left in the mode it was in)."""
        groups: dict[tuple, list[str]] = {}
        for label, (_name, metric) in self.metrics.items():
            p = metric.params
            groups.setdefault((p.extractor, p.inception_weights, p.resize, p.seed,
                               p.batch_size), []).append(label)
        results: list[MetricResult] = []
        for (*_, seed, batch_size), labels in groups.items():
            params = [self.metrics[label][1].params for label in labels]
            extractor = self._extractor(params[0])
            started = time.perf_counter()
            fake = fake_features(generator, extractor, max(p.n_fake for p in params),
                                 batch_size, seed, self.device)
            needs_real = [self.metrics[label][1].needs_real for label in labels]
            real = None
            if any(needs_real):
                n_real = max(p.n_real for p, need in zip(params, needs_real, strict=True)
                             if need)
                cache_key = (extractor.name, n_real, seed)
                if cache_key not in self._real:
                    self._real[cache_key] = real_features(
                        self.dataset, self.dataset_table, extractor, n_real, batch_size, seed,
                        self.cache_dir)
                real = self._real[cache_key]
            for label in labels:
                name, metric = self.metrics[label]
                p = metric.params
                metric_real = real.head(p.n_real) if (real is not None and metric.needs_real) \
                    else None
                value, extra = metric.score(fake.head(p.n_fake), metric_real)
                protocol = {
                    "metric": name, "n_fake": min(p.n_fake, len(fake)),
                    "n_real": len(metric_real) if metric_real is not None else None,
                    "extractor": extractor.name, "resize": extractor.resize,
                    "dataset": self.dataset_table, "seed": seed, "step": step,
                    "params": unstructure_params(p),
                    "seconds": round(time.perf_counter() - started, 3),
                }
                results.append(MetricResult(label, name, value, metric.higher_is_better,
                                            extra, protocol))
        return results
