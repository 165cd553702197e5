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

**Classes.** Items of a labelled dataset are ``(image, label)`` pairs; the real features
use their images. A conditional generator (:func:`~ganforge.core.interfaces.is_conditional`) is
given fake labels drawn uniformly over the classes from a generator of their own, seeded
with ``derive_seed(seed, "eval labels")`` from the metric's seed: the latents are drawn
from ``seed`` exactly as for an unconditional generator, whose features are unchanged.
:meth:`Evaluator.run_per_class` scores each class on its own (intra-class FID, Miyato &
Koyama 2018): the real images of class ``c`` only, against images generated with label
``c``; the real features of a class are cached under a key that names the class.

The features and their cache live in :mod:`.feature_cache`, the result classes in
:mod:`.results`; this module re-exports their names. Extractors are built by the caller
(:func:`ganforge.training.building.extractor_builder`), not here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..core.errors import UsageError
from ..core.interfaces import Dataset, Generator, Metric, is_conditional
from ..core.registry import Registry
from ..core.structuring import unstructure_params
from .feature_cache import (
    CACHE_VERSION,
    EvaluationInterrupted,
    StopCheck,
    _cache_path,
    _digest,
    _extract,
    _key,
    _load_cached,
    _poll,
    _store,
    dataset_labels,
    fake_features,
    generator_classes,
    label_seed,
    real_features,
    reference_record,
)
from .features import ExtractorLike, FeatureSet
from .reference import dataset_identity, resolved_paths
from .results import ClassResults, MetricResult, protocol_warnings

__all__ = [
    "CACHE_VERSION", "ClassResults", "EvaluationInterrupted", "Evaluator", "ExtractorFactory",
    "ExtractorBuilder", "MetricResult", "StopCheck", "_cache_path", "_digest", "_extract",
    "_key", "_load_cached", "_poll", "_store", "dataset_labels", "fake_features",
    "generator_classes", "label_seed", "protocol_warnings", "real_features",
    "reference_record",
]

#: Builds an extractor from a metric's (extractor, inception_weights, download, device,
#: resize): for tests that hand the evaluator one extractor.
ExtractorFactory = Callable[[str, str | None, bool, torch.device, str], ExtractorLike]
#: Builds the loaded extractor a metric's params name (``extractor`` and
#: ``extractor_table()``): :func:`ganforge.training.building.build_extractor` bound to a
#: registry and a device. Extractors are built in assembly, not here.
ExtractorBuilder = Callable[[Any], ExtractorLike]


class Evaluator:
    """Scores generators with a fixed set of metrics against one dataset.

    Extractors (the Inception network is ~100 MB) and real features are kept between
    calls, so evaluating every N steps during training pays for them once. The dataset's
    path params are resolved when the evaluator is made (the working directory the dataset
    was opened from); its content is fingerprinted once, when real features are first needed.
    ``dataset`` may be None when no metric needs real images. ``classes`` is the number of
    classes of the dataset (0: unlabelled; default: the dataset's own), which a conditional
    generator's fake labels are drawn from.

    The caller says how extractors are made: ``build_extractor`` (a metric's params -> a
    loaded extractor, e.g. :func:`ganforge.training.building.build_extractor` bound to a
    registry and device), ``extractor_factory`` (tests), or ``registry`` alone, whose
    extractor components are created as the metric's params name them. ``registry`` also
    qualifies extractor names (two spellings of one component share features). An evaluator
    given none of them scores nothing that needs an extractor (a ValueError).
    """

    def __init__(self, metrics: Mapping[str, tuple[str, Metric]], dataset: Dataset | None,
                 dataset_table: Mapping[str, Any], device: torch.device,
                 extractor_factory: ExtractorFactory | None = None,
                 cache_dir: Path | None = None, *, classes: int = 0,
                 registry: Registry | None = None,
                 build_extractor: ExtractorBuilder | None = None) -> None:
        self.metrics = dict(metrics)
        self.dataset = dataset
        self.dataset_table = dict(dataset_table)
        self.roots = resolved_paths(self.dataset_table)
        self.device = device
        self.extractor_factory = extractor_factory
        self.registry = registry
        self.build_extractor = build_extractor
        self.cache_dir = cache_dir
        self.classes = classes or int(getattr(dataset, "classes", 0) or 0)
        self._extractors: dict[tuple, ExtractorLike] = {}
        self._extractor_ids: dict[int, str] = {}
        self._real: dict[tuple, tuple[FeatureSet, dict[str, Any]]] = {}
        self._identity: dict[str, Any] | None = None
        self._labels: torch.Tensor | None = None

    def _extractor_key(self, p: Any) -> tuple[str, str]:
        """What makes two metrics' extractors the same: the component and its params."""
        name = p.extractor
        if self.extractor_factory is None and self.registry is not None:
            with contextlib.suppress(Exception):  # an unknown name is refused when built
                name = self.registry.qualified("extractor", p.extractor)
        return name, json.dumps(p.extractor_table(), sort_keys=True, default=str)

    def _extractor(self, p: Any) -> ExtractorLike:
        key = self._extractor_key(p)
        if key not in self._extractors:
            if self.extractor_factory is not None:
                self._extractors[key] = self.extractor_factory(
                    p.extractor, p.inception_weights, p.download, self.device, p.resize)
                return self._extractors[key]
            if self.build_extractor is not None:
                extractor = self.build_extractor(p)
            elif self.registry is not None:
                extractor = self.registry.create("extractor", p.extractor, p.extractor_table())
                extractor.load(self.device)
            else:
                raise ValueError("this evaluator was made without a way to build extractors "
                                 "(build_extractor, extractor_factory or registry)")
            self._extractors[key] = extractor
            self._extractor_ids[id(extractor)] = self.extractor_id(p)
        return self._extractors[key]

    def extractor_id(self, p: Any) -> str:
        """The extractor component and the params that change its features, for cache keys:
        the qualified name and its params, less ``download`` (never changes features) and,
        for the built-in ``inception``, ``weights`` (only the SHA-256-pinned file loads)."""
        name, _ = self._extractor_key(p)
        table = {k: v for k, v in p.extractor_table().items() if k != "download"
                 and not (name == "ganforge:inception" and k == "weights")}
        return f"{name} {json.dumps(table, sort_keys=True, default=str)}"

    def identity(self, should_stop: StopCheck | None = None) -> dict[str, Any]:
        """The dataset's identity (absolute paths, content fingerprint), computed once."""
        if self._identity is None:
            self._identity = dataset_identity(self.dataset_table, self.roots,
                                              lambda: _poll(should_stop))
        return self._identity

    def labels(self, should_stop: StopCheck | None = None) -> torch.Tensor:
        """The class label of every image of the dataset (:func:`dataset_labels`), once."""
        if self._labels is None:
            if self.dataset is None:
                raise ValueError("this evaluator was made without a dataset")
            self._labels = dataset_labels(self.dataset, should_stop)
        return self._labels

    def _real_features(self, extractor: ExtractorLike, n: int, batch_size: int, seed: int,
                       should_stop: StopCheck | None, label: int | None = None
                       ) -> tuple[FeatureSet, dict[str, Any]]:
        """Real features (from memory, the disk cache, or the dataset) and their key; of
        class ``label`` only when it is set."""
        extractor_id = self._extractor_ids.get(id(extractor))
        memo = (extractor.name, extractor_id, n, seed, label)
        if memo not in self._real:
            if self.dataset is None:
                raise ValueError("this evaluator was made without a dataset")
            labels = self.labels(should_stop) if label is not None else None
            self._real[memo] = real_features(
                self.dataset, self.identity(should_stop), extractor, n, batch_size, seed,
                self.cache_dir, should_stop, label=label, labels=labels,
                extractor_id=extractor_id)
        return self._real[memo]

    def real_statistics(self, should_stop: StopCheck | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Mean, covariance (float64) and count of the real features of the first metric
        that reads real images, as :meth:`run` computed them (from memory or the cache):
        what ``--save-reference-stats`` exports for pytorch-fid and clean-fid."""
        from .statistics import mean_and_covariance

        for _name, metric in self.metrics.values():
            if metric.uses_real_images():
                p = metric.params
                real, _ = self._real_features(self._extractor(p), p.n_real, p.batch_size,
                                              p.seed, should_stop)
                mu, sigma = mean_and_covariance(real.features)
                return mu.double(), sigma.double(), len(real)
        raise UsageError("no metric here reads real images: there are no reference "
                         "statistics to save")

    def _groups(self) -> dict[tuple, list[str]]:
        """Metric labels grouped by what their features share (extractor, seed, batch)."""
        groups: dict[tuple, list[str]] = {}
        for label, (_name, metric) in self.metrics.items():
            p = metric.params
            groups.setdefault((*self._extractor_key(p), p.seed, p.batch_size),
                              []).append(label)
        return groups

    def run(self, generator: Generator, step: int | None = None,
            should_stop: StopCheck | None = None, *, generator_label: str | None = None
            ) -> list[MetricResult]:
        """Every metric's result for ``generator`` (left in the mode it was in).

        ``should_stop`` is asked between batches of generated and real images (and every
        thousand files while fingerprinting the dataset); when it returns True the
        evaluation ends with :class:`EvaluationInterrupted` and nothing partial is cached.
        A conditional generator draws its classes uniformly (:func:`fake_features`), which
        the protocol records as ``fake_labels``; ``generator_label`` (e.g. ``"ema"``) is
        recorded as the protocol's ``generator`` when given.
        """
        conditional = is_conditional(generator)
        results: list[MetricResult] = []
        for (*_, seed, batch_size), labels in self._groups().items():
            params = [self.metrics[label][1].params for label in labels]
            extractor = self._extractor(params[0])
            started = time.perf_counter()
            fake = fake_features(generator, extractor, max(p.n_fake for p in params),
                                 batch_size, seed, self.device, should_stop,
                                 classes=self.classes)
            needs_real = [self.metrics[label][1].uses_real_images() for label in labels]
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
                uses_real = real is not None and metric.uses_real_images()
                metric_real = real.head(p.n_real) if real is not None and uses_real else None
                value, extra = metric.score(fake.head(p.n_fake), metric_real)
                n_fake = min(p.n_fake, len(fake))
                n_real = len(metric_real) if metric_real is not None else None
                protocol = {
                    "metric": name, "n_fake": n_fake, "n_real": n_real,
                    "extractor": extractor.name, "resize": extractor.resize,
                    "extractor_params": p.extractor_table(),
                    "dataset": self.dataset_table, "seed": seed, "step": step,
                    "params": unstructure_params(p),
                    "reference": reference if uses_real else None,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                stats_file = metric.reference_file()
                if stats_file is not None:
                    protocol["reference"] = stats_file
                if conditional:
                    protocol["fake_labels"] = (
                        f"uniform over {generator_classes(generator, self.classes)} classes, "
                        f"seed {label_seed(seed)} (derive_seed({seed}, 'eval labels'))")
                if generator_label is not None:
                    protocol["generator"] = generator_label
                results.append(MetricResult(
                    label, name, value, metric.higher_is_better, extra, protocol,
                    reference if uses_real else None,
                    protocol_warnings(label, p.protocol_images, n_fake, n_real)))
        return results

    def check_per_class(self, generator: Generator | None = None) -> int:
        """The number of classes :meth:`run_per_class` scores; one UsageError line when it
        cannot (an unconditional ``generator``, a dataset without classes, a metric that
        compares with no real images)."""
        if generator is not None and not is_conditional(generator):
            raise UsageError("--per-class: this checkpoint's generator is unconditional (it "
                             "draws no particular class); intra-class scores need a "
                             "conditional generator")
        if self.classes <= 0 or self.dataset is None:
            name = self.dataset_table.get("use", "?")
            raise UsageError(f"--per-class: dataset {name!r} has no classes; intra-class "
                             "scores need a labelled dataset")
        for label, (name, metric) in self.metrics.items():
            if not metric.uses_real_images():
                raise UsageError(f"--per-class: metric {label!r} ({name}) compares with no real "
                                 "images; intra-class scores are for metrics such as fid and "
                                 "kid")
        if generator is not None:
            spec = getattr(generator, "image_spec", None)
            drawn = int(getattr(spec, "classes", 0) or 0)
            if drawn and drawn != self.classes:
                raise UsageError(f"--per-class: the generator draws {drawn} classes but the "
                                 f"dataset has {self.classes}")
        return self.classes

    def run_per_class(self, generator: Generator, step: int | None = None,
                      should_stop: StopCheck | None = None, *, n_per_class: int | None = None,
                      generator_label: str | None = None) -> list[ClassResults]:
        """Every metric scored class by class, and the mean over classes (intra-class FID,
        Miyato & Koyama 2018): class ``c``'s real images only (the dataset's labels; a
        seeded selection, cached under a key naming the class) against images generated
        with label ``c`` from the metric's seeded latents (the same latents for every
        class). Each class uses ``min(n_per_class, images of the class)`` images, real and
        generated alike; without ``n_per_class``, ``min(n_fake, n_real, images of the
        class)`` of each metric. Refused (:meth:`check_per_class`) for an unconditional
        generator, an unlabelled dataset and metrics without real images."""
        classes = self.check_per_class(generator)
        labels_of_images = self.labels(should_stop)
        counts = torch.bincount(labels_of_images[labels_of_images >= 0],
                                minlength=classes).tolist()
        per_metric: dict[str, list[MetricResult]] = {label: [] for label in self.metrics}
        seconds: dict[str, float] = dict.fromkeys(self.metrics, 0.0)
        for (*_, seed, batch_size), labels in self._groups().items():
            extractor = self._extractor(self.metrics[labels[0]][1].params)
            for cls in range(classes):
                started = time.perf_counter()
                sizes = {}
                for label in labels:
                    p = self.metrics[label][1].params
                    wanted = n_per_class if n_per_class is not None else min(p.n_fake,
                                                                             p.n_real)
                    sizes[label] = min(wanted, counts[cls])
                n = max(sizes.values())
                if n < 2:
                    raise UsageError(f"--per-class: class {cls} has {counts[cls]} image(s) in "
                                     "the dataset; each class needs at least 2")
                fake = fake_features(generator, extractor, n, batch_size, seed, self.device,
                                     should_stop, classes=classes, label=cls)
                real, key = self._real_features(extractor, n, batch_size, seed, should_stop,
                                                label=cls)
                reference = reference_record(key)
                for label in labels:
                    name, metric = self.metrics[label]
                    p = metric.params
                    metric_fake, metric_real = fake.head(sizes[label]), real.head(sizes[label])
                    value, extra = metric.score(metric_fake, metric_real)
                    took = time.perf_counter() - started
                    seconds[label] += took
                    protocol = {
                        "metric": name, "per_class": True, "class": cls,
                        "n_fake": len(metric_fake), "n_real": len(metric_real),
                        "fake_labels": f"class {cls} for every generated image",
                        "extractor": extractor.name, "resize": extractor.resize,
                        "extractor_params": p.extractor_table(),
                        "dataset": self.dataset_table, "seed": seed, "step": step,
                        "params": unstructure_params(p), "reference": reference,
                        "seconds": round(took, 3),
                    }
                    if generator_label is not None:
                        protocol["generator"] = generator_label
                    per_metric[label].append(MetricResult(
                        f"{label}[{cls}]", name, value, metric.higher_is_better, extra,
                        protocol, reference,
                        protocol_warnings(f"{label}[{cls}]", p.protocol_images,
                                          len(metric_fake), len(metric_real))))
        results = []
        for label, (name, metric) in self.metrics.items():
            scores = per_metric[label]
            first = scores[0].protocol
            protocol = {
                "metric": name, "per_class": True, "classes": classes,
                "n_per_class": n_per_class,
                "n_fake": [r.protocol["n_fake"] for r in scores],
                "n_real": [r.protocol["n_real"] for r in scores],
                "fake_labels": "class c for class c's generated images",
                "extractor": first["extractor"], "resize": first["resize"],
                "extractor_params": first["extractor_params"],
                "dataset": self.dataset_table, "seed": first["seed"], "step": step,
                "params": first["params"],
                "seconds": round(seconds[label], 3),
            }
            if generator_label is not None:
                protocol["generator"] = generator_label
            mean = float(sum(r.value for r in scores) / len(scores))
            results.append(ClassResults(label, name, mean, metric.higher_is_better,
                                        tuple(scores), protocol))
        return results
