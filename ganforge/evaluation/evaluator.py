"""Running metrics on a generator: fake and real features, reference cache, protocol.

Features are extracted once per extractor and shared by every metric that uses it (the
largest ``n_fake``/``n_real`` asked for is computed; each metric takes the first images it
needs). Real-image features are cached in ``<user cache>/reference/`` as safetensors, keyed
by the dataset's identity (its params with every path made absolute, and a fingerprint of
the files there: see :mod:`.reference`), the extractor, the number of images and the
selection seed, so a run's evaluations and later ``ganforge eval`` calls compute them once,
and never reuse another folder's statistics. Every score records the key it used.

A stop request (``should_stop``, asked between batches) ends an evaluation with
:class:`EvaluationInterrupted`; nothing partial is cached.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..cache import user_cache_dir
from ..datasets.decoding import BadImage
from ..datasets.policy import Skipped
from ..errors import DataError, StorageError
from ..files import write_bytes_atomic, writing
from ..interfaces import Dataset, Generator, Metric
from ..sampling import generate
from ..structuring import unstructure_params
from .features import FeatureExtractor, FeatureSet, make_extractor
from .reference import dataset_identity, resolved_paths

#: 2: keyed by the dataset's identity (absolute paths and content fingerprint).
CACHE_VERSION = 2

StopCheck = Callable[[], bool]


class EvaluationInterrupted(Exception):
    """A stop request ended an evaluation between two batches; nothing was cached."""


def _poll(should_stop: StopCheck | None) -> None:
    """Raise :class:`EvaluationInterrupted` when a stop was requested."""
    if should_stop is not None and should_stop():
        raise EvaluationInterrupted("evaluation interrupted by a stop request")


@attrs.frozen
class MetricResult:
    """One score and the protocol that produced it."""

    label: str
    metric: str
    value: float
    higher_is_better: bool
    extra: dict[str, float]
    protocol: dict[str, Any]
    #: The real-image statistics used: ``{"key": cache key digest, "roots": {param: absolute
    #: path}, "content": {param: fingerprint}}``; None for a metric without real images.
    reference: dict[str, Any] | None = None

    def summary(self) -> str:
        """``fid 23.4125 (10000 fake vs 10000 real images, <extractor>, <dataset>,
        reference <key> at <root>)``."""
        p = self.protocol
        extra = "".join(f" {k} {v:.4g}" for k, v in self.extra.items())
        real = f" vs {p['n_real']} real" if p.get("n_real") else ""
        reference = ""
        if self.reference is not None:
            roots = "".join(f" at {root}" for root in self.reference["roots"].values())
            reference = f", reference {self.reference['key']}{roots}"
        return (f"{self.label} {self.value:.4f}{extra} ({p['n_fake']} fake{real} images, "
                f"{p['extractor']}, resize {p['resize']}, dataset {p['dataset']['use']}"
                f"{reference})")


def _key(identity: Mapping[str, Any], extractor: str, n: int, seed: int) -> dict[str, Any]:
    """The full cache key: what the statistics depend on, as JSON values (tuples become
    lists here, as they do in the cached file's copy it is compared with)."""
    key = {"version": CACHE_VERSION, **identity, "extractor": extractor, "n": n, "seed": seed}
    return json.loads(json.dumps(key, sort_keys=True))


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _cache_path(key: Mapping[str, Any], root: Path | None) -> Path:
    return (root or user_cache_dir("reference")) / f"{_digest(key)}.safetensors"


def reference_record(key: Mapping[str, Any]) -> dict[str, Any]:
    """What a score records of its reference: the key's digest (the cache file's name),
    the absolute paths read and their content fingerprints."""
    dataset = key["dataset"]
    return {"key": _digest(key),
            "roots": {name: dataset[name] for name in key["content"]},
            "content": dict(key["content"])}


def _load_cached(path: Path, key: Mapping[str, Any]) -> torch.Tensor | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            if json.loads((f.metadata() or {}).get("key", "null")) != key:
                return None
            return f.get_tensor("features")
    except (OSError, SafetensorError, ValueError):
        return None


def _store(path: Path, key: Mapping[str, Any], features: torch.Tensor) -> bool:
    """Cache ``features`` under ``path``, complete or not at all. The temporary file's name
    is unique to this writer (two runs may compute one reference at once). The cache only
    saves time, so a folder that cannot be written (full disk, read-only) is passed over:
    returns whether the entry was written."""
    data = save({"features": features.contiguous()},
                metadata={"key": json.dumps(key, sort_keys=True)})
    try:
        with writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except StorageError:
        return False
    return True


def _extract(extractor: FeatureExtractor, images: torch.Tensor, batch: list, logits: list) -> None:
    features, class_logits = extractor(images)
    batch.append(features.float().cpu())
    if class_logits is not None:
        logits.append(class_logits.float().cpu())


def fake_features(generator: Generator, extractor: FeatureExtractor, n: int, batch_size: int,
                  seed: int, device: torch.device, should_stop: StopCheck | None = None
                  ) -> FeatureSet:
    """Features of ``n`` generated images from latents drawn with ``seed``; ``should_stop``
    is asked before every batch (:class:`EvaluationInterrupted` when it says so)."""
    rng = torch.Generator().manual_seed(seed)
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        _poll(should_stop)
        size = min(batch_size, n - start)
        z = generator.sample_latent(size, rng, "cpu").to(device)
        _extract(extractor, generate(generator, z), features, logits)
    return FeatureSet(torch.cat(features), torch.cat(logits) if logits else None)


def real_features(dataset: Dataset, identity: Mapping[str, Any],
                  extractor: FeatureExtractor, n: int, batch_size: int, seed: int,
                  cache_dir: Path | None = None, should_stop: StopCheck | None = None
                  ) -> tuple[FeatureSet, dict[str, Any]]:
    """Features of ``n`` real images (a seeded selection; bad images passed over), cached
    under the dataset's ``identity`` (:func:`.reference.dataset_identity`), and the cache
    key. ``should_stop`` is asked before every batch; when it interrupts, nothing is cached.
    """
    n = min(n, len(dataset))
    key = _key(identity, extractor.name, n, seed)
    path = _cache_path(key, cache_dir)
    cached = _load_cached(path, key) if path.exists() else None
    if cached is not None:
        return FeatureSet(cached), key
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    features: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    taken = 0
    for index in order.tolist():
        if not pending:  # a batch begins
            _poll(should_stop)
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
    if pending:  # the dataset ran out (bad images passed over) with a batch half full
        _extract(extractor, torch.stack(pending), features, [])
    if taken < 2:
        raise DataError("evaluation: fewer than 2 readable real images")
    result = torch.cat(features)
    _store(path, key, result)
    return FeatureSet(result), key


ExtractorFactory = Callable[[str, str | None, bool, torch.device, str], FeatureExtractor]


class Evaluator:
    """Scores generators with a fixed set of metrics against one dataset.

    Extractors (the Inception network is ~100 MB) and real features are kept between
    calls, so evaluating every N steps during training pays for them once. The dataset's
    path params are resolved when the evaluator is made (the working directory the dataset
    was opened from); its content is fingerprinted once, when real features are first needed.
    ``dataset`` may be None when no metric needs real images.
    """

    def __init__(self, metrics: Mapping[str, tuple[str, Metric]], dataset: Dataset | None,
                 dataset_table: Mapping[str, Any], device: torch.device,
                 extractor_factory: ExtractorFactory = make_extractor,
                 cache_dir: Path | None = None) -> None:
        self.metrics = dict(metrics)
        self.dataset = dataset
        self.dataset_table = dict(dataset_table)
        self.roots = resolved_paths(self.dataset_table)
        self.device = device
        self.extractor_factory = extractor_factory
        self.cache_dir = cache_dir
        self._extractors: dict[tuple, FeatureExtractor] = {}
        self._real: dict[tuple, tuple[FeatureSet, dict[str, Any]]] = {}
        self._identity: dict[str, Any] | None = None

    def _extractor(self, p: Any) -> FeatureExtractor:
        key = (p.extractor, p.inception_weights, p.resize)
        if key not in self._extractors:
            self._extractors[key] = self.extractor_factory(p.extractor, p.inception_weights,
                                                           p.download, self.device, p.resize)
        return self._extractors[key]

    def identity(self, should_stop: StopCheck | None = None) -> dict[str, Any]:
        """The dataset's identity (absolute paths, content fingerprint), computed once."""
        if self._identity is None:
            self._identity = dataset_identity(self.dataset_table, self.roots,
                                              lambda: _poll(should_stop))
        return self._identity

    def _real_features(self, extractor: FeatureExtractor, n: int, batch_size: int, seed: int,
                       should_stop: StopCheck | None) -> tuple[FeatureSet, dict[str, Any]]:
        """Real features (from memory, the disk cache, or the dataset) and their key."""
        memo = (extractor.name, n, seed)
        if memo not in self._real:
            if self.dataset is None:
                raise ValueError("this evaluator was made without a dataset")
            self._real[memo] = real_features(
                self.dataset, self.identity(should_stop), extractor, n, batch_size, seed,
                self.cache_dir, should_stop)
        return self._real[memo]

    def run(self, generator: Generator, step: int | None = None,
            should_stop: StopCheck | None = None) -> list[MetricResult]:
        """Every metric's result for ``generator`` (left in the mode it was in).

        ``should_stop`` is asked between batches of generated and real images (and every
        thousand files while fingerprinting the dataset); when it returns True the
        evaluation ends with :class:`EvaluationInterrupted` and nothing partial is cached.
        """
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
                                 batch_size, seed, self.device, should_stop)
            needs_real = [self.metrics[label][1].needs_real for label in labels]
            real, reference = None, None
            if any(needs_real):
                n_real = max(p.n_real for p, need in zip(params, needs_real, strict=True)
                             if need)
                real, key = self._real_features(extractor, n_real, batch_size, seed,
                                                should_stop)
                reference = reference_record(key)
            for label in labels:
                name, metric = self.metrics[label]
                p = metric.params
                uses_real = real is not None and metric.needs_real
                metric_real = real.head(p.n_real) if real is not None and uses_real else None
                value, extra = metric.score(fake.head(p.n_fake), metric_real)
                protocol = {
                    "metric": name, "n_fake": min(p.n_fake, len(fake)),
                    "n_real": len(metric_real) if metric_real is not None else None,
                    "extractor": extractor.name, "resize": extractor.resize,
                    "dataset": self.dataset_table, "seed": seed, "step": step,
                    "params": unstructure_params(p),
                    "reference": reference if uses_real else None,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                results.append(MetricResult(label, name, value, metric.higher_is_better,
                                            extra, protocol,
                                            reference if uses_real else None))
        return results
