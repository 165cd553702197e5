"""Features of generated and real images, and the on-disk cache of real-image features.

Features are extracted in batches; a stop request (``should_stop``, asked between
batches) ends the work with :class:`EvaluationInterrupted`, and nothing partial is cached.
Real-image features are cached in ``<user cache>/reference/`` as safetensors, keyed by the
dataset's identity (:mod:`.reference`), the extractor (its component and params), the
number of images, the selection seed and, for one class's images, the class. Used by
:class:`~ganforge.evaluation.evaluator.Evaluator`, which re-exports these names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..core.cache import user_cache_dir
from ..core.errors import DataError, UsageError
from ..core.interfaces import Dataset, Generator, is_conditional
from ..core.seeds import derive_seed
from ..datasets.decoding import BadImage
from ..datasets.policy import Skipped, split_item
from ..io.keyed_cache import load_keyed, store_keyed
from ..sampling import generate
from .features import ExtractorLike, FeatureSet

#: 2: keyed by the dataset's identity (absolute paths and content fingerprint).
#: 3: and by the extractor component and its params (two plugin extractors, or one with
#: other params, that report the same ``name`` no longer share statistics).
CACHE_VERSION = 3

StopCheck = Callable[[], bool]


class EvaluationInterrupted(Exception):
    """A stop request ended an evaluation between two batches; nothing was cached."""


def _poll(should_stop: StopCheck | None) -> None:
    """Raise :class:`EvaluationInterrupted` when a stop was requested."""
    if should_stop is not None and should_stop():
        raise EvaluationInterrupted("evaluation interrupted by a stop request")



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
    found = load_keyed(path, key, ("features",))
    return None if found is None else found["features"]


def _store(path: Path, key: Mapping[str, Any], features: torch.Tensor) -> bool:
    """Cache ``features`` under ``path``, complete or not at all (:func:`store_keyed`):
    returns whether the entry was written."""
    return store_keyed(path, key, {"features": features})


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

