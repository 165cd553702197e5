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
use their images. A conditional generator (:func:`~ganforge.interfaces.is_conditional`) is
given fake labels drawn uniformly over the classes from a generator of their own, seeded
with ``derive_seed(seed, "eval labels")`` from the metric's seed: the latents are drawn
from ``seed`` exactly as for an unconditional generator, whose features are unchanged.
:meth:`Evaluator.run_per_class` scores each class on its own (intra-class FID, Miyato &
Koyama 2018): the real images of class ``c`` only, against images generated with label
``c``; the real features of a class are cached under a key that names the class.
"""

from __future__ import annotations

import contextlib
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
from ..datasets.policy import Skipped, split_item
from ..errors import DataError, StorageError, UnknownComponentError, UsageError
from ..files import write_bytes_atomic, writing
from ..interfaces import Dataset, Generator, Metric, is_conditional
from ..registry import Registry
from ..sampling import generate
from ..seeds import derive_seed
from ..structuring import unstructure_params
from .features import ExtractorLike, FeatureSet
from .reference import dataset_identity, resolved_paths

#: 2: keyed by the dataset's identity (absolute paths and content fingerprint).
#: 3: and by the extractor component and its params (two plugin extractors, or one with
#: other params, that report the same ``name`` no longer share statistics).
CACHE_VERSION = 3

StopCheck = Callable[[], bool]


def build_extractor(registry: Registry, params: Any, device: torch.device) -> ExtractorLike:
    """The feature extractor a metric's ``params`` name (``extractor``, with
    :meth:`~ganforge.evaluation.metrics.MetricParams.extractor_table`), loaded on
    ``device``; one line naming the extractor when it is unknown or its params are wrong."""
    from ..errors import RecipeError

    try:
        extractor = registry.create("extractor", params.extractor, params.extractor_table())
    except UnknownComponentError as exc:
        raise UsageError(f"feature extractor: {exc}") from None
    except RecipeError as exc:
        raise UsageError(f"feature extractor {params.extractor!r}: "
                         f"{str(exc).splitlines()[0]}") from None
    extractor.load(device)
    return extractor


def protocol_warnings(label: str, claimed: int | None, n_fake: int,
                      n_real: int | None) -> tuple[str, ...]:
    """A warning when a score used fewer images than the protocol it claims to follow
    (``protocol_images``): such numbers are not comparable with published ones (FID is
    biased upwards at small sample sizes)."""
    if claimed is None:
        return ()
    short = [f"{n} {what}" for n, what in ((n_fake, "generated"), (n_real, "real"))
             if n is not None and n < claimed]
    if not short:
        return ()
    return (f"{label}: scored with {' and '.join(short)} images, fewer than the {claimed} of "
            f"the protocol it follows (protocol_images): not comparable with published "
            f"numbers",)


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
    #: Why the score is not comparable with the protocol it claims (fewer images), if so.
    warnings: tuple[str, ...] = ()

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


def _key(identity: Mapping[str, Any], extractor: str, n: int, seed: int,
         label: int | None = None, extractor_id: str | None = None) -> dict[str, Any]:
    """The full cache key: what the statistics depend on, as JSON values (tuples become
    lists here, as they do in the cached file's copy it is compared with). The real images
    of one class (``label``) are keyed with ``"class"``. ``extractor_id`` names the
    extractor component and its params (:meth:`Evaluator.extractor_id`)."""
    key = {"version": CACHE_VERSION, **identity, "extractor": extractor, "n": n, "seed": seed}
    if label is not None:
        key["class"] = label
    if extractor_id is not None:
        key["extractor_component"] = extractor_id
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


def _extract(extractor: ExtractorLike, images: torch.Tensor, batch: list, logits: list) -> None:
    features, class_logits = extractor(images)
    batch.append(features.float().cpu())
    if class_logits is not None:
        logits.append(class_logits.float().cpu())


def label_seed(seed: int) -> int:
    """The seed of the fake labels a conditional generator is given, derived from the
    metric's ``seed`` (which draws the latents)."""
    return derive_seed(seed, "eval labels")


def generator_classes(generator: Generator, classes: int = 0) -> int:
    """How many classes a conditional generator draws: ``classes`` (the dataset's) when
    given, else the generator's own ``image_spec.classes``."""
    if classes <= 0:
        spec = getattr(generator, "image_spec", None)
        classes = int(getattr(spec, "classes", 0) or 0)
    if classes <= 0:
        raise UsageError("evaluation: the generator is conditional but no number of classes "
                         "is known (the dataset has no classes)")
    return classes


def fake_features(generator: Generator, extractor: ExtractorLike, n: int, batch_size: int,
                  seed: int, device: torch.device, should_stop: StopCheck | None = None, *,
                  classes: int = 0, label: int | None = None) -> FeatureSet:
    """Features of ``n`` generated images from latents drawn with ``seed``; ``should_stop``
    is asked before every batch (:class:`EvaluationInterrupted` when it says so).

    A conditional generator is given ``label`` for every image when it is set, else labels
    drawn uniformly from ``classes`` (default: the generator's) with a generator seeded
    :func:`label_seed` ``(seed)``. The latents are the same either way, and an unconditional
    generator gets exactly the latents and features it got before labels existed."""
    conditional = is_conditional(generator)
    if label is not None and not conditional:
        raise UsageError("evaluation: a class was asked of an unconditional generator")
    rng = torch.Generator().manual_seed(seed)
    label_rng = None
    if conditional and label is None:
        classes = generator_classes(generator, classes)
        label_rng = torch.Generator().manual_seed(label_seed(seed))
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    drawn: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        _poll(should_stop)
        size = min(batch_size, n - start)
        z = generator.sample_latent(size, rng, "cpu").to(device)
        labels = None
        if label_rng is not None:
            labels = torch.randint(classes, (size,), generator=label_rng).to(device)
        elif label is not None:
            labels = torch.full((size,), label, dtype=torch.int64, device=device)
        _extract(extractor, generate(generator, z, labels), features, logits)
        if labels is not None:
            drawn.append(labels.cpu())
    return FeatureSet(torch.cat(features), torch.cat(logits) if logits else None,
                      torch.cat(drawn) if drawn else None)


def dataset_labels(dataset: Any, should_stop: StopCheck | None = None) -> torch.Tensor:
    """The class label of every item of a labelled dataset (``int64``, shape ``(N,)``): its
    ``targets`` when it keeps them, else read from its items (every image is read once; an
    unreadable one gets label -1). A dataset without classes is a UsageError."""
    size = len(dataset)
    classes = int(getattr(dataset, "classes", 0) or 0)
    targets = getattr(dataset, "targets", None) if classes > 0 else None
    if targets is not None:
        labels = torch.as_tensor(targets).reshape(-1).long()
        if labels.shape[0] == size:
            return labels
    if classes <= 0:
        raise UsageError(f"dataset {type(dataset).__name__} has no classes")
    read = []
    for index in range(size):
        if index % 1000 == 0:
            _poll(should_stop)
        try:
            _, label = split_item(dataset[index])
        except BadImage:
            label = None
        read.append(-1 if label is None else label)
    return torch.tensor(read, dtype=torch.int64)


def real_features(dataset: Dataset, identity: Mapping[str, Any],
                  extractor: ExtractorLike, n: int, batch_size: int, seed: int,
                  cache_dir: Path | None = None, should_stop: StopCheck | None = None, *,
                  label: int | None = None, labels: torch.Tensor | None = None,
                  extractor_id: str | None = None) -> tuple[FeatureSet, dict[str, Any]]:
    """Features of ``n`` real images (a seeded selection; bad images passed over), cached
    under the dataset's ``identity`` (:func:`.reference.dataset_identity`), and the cache
    key. ``should_stop`` is asked before every batch; when it interrupts, nothing is cached.

    With ``label``, only images of that class are taken (at most as many as it has): the
    class's members in the same seeded order, each item's own label checked; ``labels``
    are the dataset's labels (default: :func:`dataset_labels`). The key names the class.
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    if label is not None:
        if labels is None:
            labels = dataset_labels(dataset, should_stop)
        order = order[labels[order] == label]
    n = min(n, len(order))
    key = _key(identity, extractor.name, n, seed, label, extractor_id)
    path = _cache_path(key, cache_dir)
    cached = _load_cached(path, key) if path.exists() else None
    if cached is not None:
        return FeatureSet(cached), key
    features: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    taken = 0
    for index in order.tolist():
        if taken == n:
            break
        if not pending:  # a batch begins
            _poll(should_stop)
        try:
            image, item_label = split_item(dataset[index])
        except BadImage:
            continue
        if isinstance(image, Skipped) or (label is not None and item_label != label):
            continue
        pending.append(image)
        taken += 1
        if len(pending) == batch_size or taken == n:
            _extract(extractor, torch.stack(pending), features, [])
            pending = []
    if pending:  # the dataset ran out (bad images passed over) with a batch half full
        _extract(extractor, torch.stack(pending), features, [])
    if taken < 2:
        of = "" if label is None else f" of class {label}"
        raise DataError(f"evaluation: fewer than 2 readable real images{of}")
    result = torch.cat(features)
    _store(path, key, result)
    return FeatureSet(result), key


#: Builds an extractor from a metric's (extractor, inception_weights, download, device,
#: resize): for tests; the evaluator builds registered extractors itself when none is given.
ExtractorFactory = Callable[[str, str | None, bool, torch.device, str], ExtractorLike]


class Evaluator:
    """Scores generators with a fixed set of metrics against one dataset.

    Extractors (the Inception network is ~100 MB) and real features are kept between
    calls, so evaluating every N steps during training pays for them once. The dataset's
    path params are resolved when the evaluator is made (the working directory the dataset
    was opened from); its content is fingerprinted once, when real features are first needed.
    ``dataset`` may be None when no metric needs real images. ``classes`` is the number of
    classes of the dataset (0: unlabelled; default: the dataset's own), which a conditional
    generator's fake labels are drawn from.
    """

    def __init__(self, metrics: Mapping[str, tuple[str, Metric]], dataset: Dataset | None,
                 dataset_table: Mapping[str, Any], device: torch.device,
                 extractor_factory: ExtractorFactory | None = None,
                 cache_dir: Path | None = None, *, classes: int = 0,
                 registry: Registry | None = None) -> None:
        self.metrics = dict(metrics)
        self.dataset = dataset
        self.dataset_table = dict(dataset_table)
        self.roots = resolved_paths(self.dataset_table)
        self.device = device
        self.extractor_factory = extractor_factory
        self.registry = registry
        self.cache_dir = cache_dir
        self.classes = classes or int(getattr(dataset, "classes", 0) or 0)
        self._extractors: dict[tuple, ExtractorLike] = {}
        self._extractor_ids: dict[int, str] = {}
        self._real: dict[tuple, tuple[FeatureSet, dict[str, Any]]] = {}
        self._identity: dict[str, Any] | None = None
        self._labels: torch.Tensor | None = None

    def _registry(self) -> Registry:
        if self.registry is None:
            from ..plugins import load_plugins

            self.registry = load_plugins().registry
        return self.registry

    def _extractor_key(self, p: Any) -> tuple[str, str]:
        """What makes two metrics' extractors the same: the component and its params."""
        name = p.extractor
        if self.extractor_factory is None:
            with contextlib.suppress(Exception):  # an unknown name is refused when built
                name = self._registry().qualified("extractor", p.extractor)
        return name, json.dumps(p.extractor_table(), sort_keys=True, default=str)

    def _extractor(self, p: Any) -> ExtractorLike:
        key = self._extractor_key(p)
        if key not in self._extractors:
            if self.extractor_factory is not None:
                self._extractors[key] = self.extractor_factory(
                    p.extractor, p.inception_weights, p.download, self.device, p.resize)
            else:
                self._extractors[key] = build_extractor(self._registry(), p, self.device)
                self._extractor_ids[id(self._extractors[key])] = self.extractor_id(p)
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


@attrs.frozen
class ClassResults:
    """One metric scored class by class (:meth:`Evaluator.run_per_class`): each class's
    :class:`MetricResult` (its protocol has ``per_class``, ``class`` and its image counts),
    and ``value``, their mean: the intra-class score (intra-class FID for ``fid``)."""

    label: str
    metric: str
    value: float
    higher_is_better: bool
    per_class: tuple[MetricResult, ...]
    protocol: dict[str, Any]

    @property
    def values(self) -> list[float]:
        """Each class's value, class 0 first."""
        return [r.value for r in self.per_class]

    def summary(self) -> str:
        """``intra-class fid 23.4125, mean of 10 classes (178 to 183 fake and real images
        per class, <extractor>, <dataset>)``."""
        p = self.protocol
        counts = p["n_real"]
        low, high = min(counts), max(counts)
        each = f"{low}" if low == high else f"{low} to {high}"
        return (f"intra-class {self.label} {self.value:.4f}, mean of {p['classes']} classes "
                f"({each} fake and real images per class, {p['extractor']}, resize "
                f"{p['resize']}, dataset {p['dataset']['use']})")
