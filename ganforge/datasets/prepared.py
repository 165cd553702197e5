"""Prepared datasets: any dataset decoded once into uint8 shards read at memory speed.

``prepare_dataset`` writes ``shard-00000.npy`` files (uint8, NCHW, ``allow_pickle`` off)
plus one ``shard-00000.json`` per shard (its count and the images it skipped); a shard
counts as done when its JSON exists, which is written after the array is renamed into
place, so an interrupted preparation resumes with the first unfinished shard.
``manifest.json``, written last, records what the folder was made from: the dataset's
registered name and params, the image shape (with ``classes`` when the source is labelled)
and the count. Each shard's JSON and the manifest record the size and SHA-256 of its files:
a reused shard is checked against them, and opening a set checks every shard's header and
size (and, when the set is held in memory, its SHA-256), so a damaged shard is named.
``prepare`` never writes into a folder holding a manifest or shards it did not write (see
:mod:`.prepared_files`).

A labelled source (``classes > 0`` in its spec) also gets one
``shard-00000.labels.safetensors`` per shard (tensor ``labels``: int64, one per stored
image; never pickle), written before the shard's JSON; a skipped image leaves no label. A
folder prepared before labels existed (or from an unlabelled source) has none and reads as
unlabelled.

The ``prepared`` dataset memory-maps the shards (``in_memory = "none"``), or holds them
whole in host memory (``"host"``) or on the training device (``"device"``, where the
trainer indexes batches with no data loader at all).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors.torch import save as safetensors_save
from torch.utils.data import DataLoader, Subset

from ..core.errors import DataError
from ..core.interfaces import Dataset, ImageSpec
from ..core.params import param
from .common import (
    Uint8ImageDataset,
    channels_validator,
    classes_validator,
    image_size_validator,
    sized_spec,
    width_param,
)
from .decoding import BadImage, to_uint8
from .policy import Skipped, split_item
from .prepared_files import (
    MANIFEST,
    SOURCE,
    check_file,
    check_owned,
    check_shard_header,
    file_record,
)
from .worker_errors import WorkerErrorsUnwrapped
from .worker_signals import StopRequest, loader_worker_init

FORMAT = 1


def uint8_item(dataset: Dataset, index: int) -> torch.Tensor | Skipped:
    """Item ``index``'s image as uint8 CHW (its label, if any, dropped): exact for file
    datasets, quantised for the others."""
    own = getattr(dataset, "uint8_item", None)
    if own is not None:
        return own(index)
    image = split_item(dataset[index])[0]
    if isinstance(image, Skipped):
        return image
    return to_uint8(image)


def dataset_classes(dataset: Any) -> int:
    """The number of classes ``dataset`` labels its images with (0: unlabelled)."""
    spec = getattr(dataset, "image_spec", None)
    return int(getattr(spec, "classes", 0) or 0)


def uint8_labelled_item(dataset: Dataset, index: int
                        ) -> tuple[torch.Tensor | Skipped, int | None]:
    """Item ``index`` as ``(uint8 CHW image or Skipped marker, label or None)``; a skipped
    image has no label. A dataset with ``uint8_item`` gives its label through
    ``item_label`` (reading no image twice)."""
    own = getattr(dataset, "uint8_item", None)
    label_of = getattr(dataset, "item_label", None)
    if own is not None and (label_of is not None or not dataset_classes(dataset)):
        image = own(index)
        if isinstance(image, Skipped) or label_of is None:
            return image, None
        return image, label_of(index)
    image, label = split_item(dataset[index])
    if isinstance(image, Skipped):
        return image, None
    return to_uint8(image), label


class _Uint8View(torch.utils.data.Dataset):
    """Picklable adapter so loader workers return ``(uint8 image or Skipped, label)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Skipped, int | None]:
        return uint8_labelled_item(self.dataset, index)


def _as_list(items: Sequence[Any]) -> list[Any]:
    return list(items)


@attrs.frozen
class PrepareReport:
    """What ``prepare_dataset`` did."""

    out: Path
    count: int
    skipped: int
    shards_written: int
    shards_reused: int
    seconds: float


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def labels_file(number: int) -> str:
    """The name of shard ``number``'s labels file."""
    return f"shard-{number:05d}.labels.safetensors"


def spec_record(spec: ImageSpec) -> dict[str, int]:
    """How the manifest records an image spec: ``channels`` and ``size``, ``width`` only for
    non-square images and ``classes`` only for a labelled set (so a square unlabelled set's
    manifest is as before either existed)."""
    record = {"channels": spec.channels, "size": spec.size}
    if not spec.square:
        record["width"] = spec.width
    if spec.classes:
        record["classes"] = spec.classes
    return record


def _checked_label(label: int | None, classes: int, index: int) -> int:
    if label is None or not 0 <= label < classes:
        raise DataError(f"prepare: item {index} has label {label!r}, but the dataset has "
                        f"{classes} classes (labels 0 to {classes - 1})")
    return label


def _closing(batches: Any) -> Iterator[Any]:
    """Iterate ``batches`` and stop its worker processes when the loop ends, however it
    ends (a stop signal included), rather than when the iterator is collected."""
    try:
        yield from batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # through the wrapper
        if shutdown is not None:
            shutdown()


def prepare_dataset(dataset: Dataset, source: dict[str, Any], out: Path, *,
                    shard_size: int = 4096, workers: int | None = None,
                    progress: bool = True, stop: StopRequest | None = None
                    ) -> PrepareReport:
    """Decode every image of ``dataset`` once into uint8 shards under ``out``.

    ``source`` (``{"use": name, **params}``) is recorded in the manifest. Re-running on the
    same ``out`` resumes: finished shards are kept; a folder prepared from a different
    source is refused. A labelled dataset's labels are stored beside its images. ``stop``
    (from :func:`~.worker_signals.stop_signals_interrupt`) is checked after every batch:
    a stop signal ends the work there, its loader workers stopped, finished shards kept.
    """
    from ..core.progress_bars import progress_bar

    started = time.perf_counter()
    spec = dataset.image_spec
    total = len(dataset)
    plan = {"format": FORMAT, "source": source, "image_spec": spec_record(spec),
            "total": total, "shard_size": shard_size}
    resuming = check_owned(out, plan, FORMAT)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        _atomic_json(out / SOURCE, plan)
    workers = (os.cpu_count() or 1) if workers is None else workers
    shards = [range(s, min(s + shard_size, total)) for s in range(0, total, shard_size)]
    written = reused = 0
    with progress_bar("preparing", progress) as bar:
        task = bar.add_task("prepare", total=total)
        for number, indices in enumerate(shards):
            meta_path = out / f"shard-{number:05d}.json"
            if meta_path.exists():
                _check_reused(out, number, meta_path, spec)
                reused += 1
                bar.advance(task, len(indices))
                continue
            images: list[torch.Tensor] = []
            labels: list[int] = []
            skipped: list[dict[str, str]] = []
            loader = DataLoader(Subset(_Uint8View(dataset), list(indices)), batch_size=64,
                                num_workers=workers, collate_fn=_as_list,
                                worker_init_fn=loader_worker_init if workers else None)
            at = indices.start
            for items in _closing(WorkerErrorsUnwrapped(loader)):
                for image, label in items:
                    if isinstance(image, Skipped):
                        skipped.append({"key": image.key, "reason": image.reason})
                    else:
                        images.append(image)
                        if spec.classes:
                            labels.append(_checked_label(label, spec.classes, at))
                    at += 1
                bar.advance(task, len(items))
                if stop is not None:
                    stop.raise_if_requested()
            array = (torch.stack(images).numpy() if images
                     else np.zeros((0, *spec.shape()), dtype=np.uint8))
            tmp = out / f".shard-{number:05d}.npy.tmp"
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            record = file_record(tmp)  # what a reuse and a reader check it against
            os.replace(tmp, out / f"shard-{number:05d}.npy")
            if spec.classes:
                data = safetensors_save({"labels": torch.tensor(labels, dtype=torch.int64)})
                _atomic_bytes(out / labels_file(number), data)
                record.update(labels_bytes=len(data),
                              labels_sha256=hashlib.sha256(data).hexdigest())
            _atomic_json(meta_path, {"count": len(images), "first_index": indices.start,
                                     "skipped": skipped, **record})
            written += 1
    metas = [json.loads((out / f"shard-{n:05d}.json").read_text()) for n in range(len(shards))]
    count = sum(m["count"] for m in metas)
    skipped_total = sum(len(m["skipped"]) for m in metas)
    if count == 0:
        raise DataError(f"{out}: every image of the dataset was skipped")
    _atomic_json(out / MANIFEST, {
        **plan, "count": count, "skipped": skipped_total,
        "shards": [{"file": f"shard-{n:05d}.npy", "count": m["count"],
                    **({"labels": labels_file(n)} if spec.classes else {}),
                    **{k: m[k] for k in _RECORD_KEYS if k in m}}
                   for n, m in enumerate(metas)],
    })
    return PrepareReport(out, count, skipped_total, written, reused,
                         time.perf_counter() - started)


#: What a shard's JSON and the manifest record of its files (absent in older folders).
_RECORD_KEYS = ("bytes", "sha256", "labels_bytes", "labels_sha256")


def _labels_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"bytes": record.get("labels_bytes"), "sha256": record.get("labels_sha256")}


def _check_reused(out: Path, number: int, meta_path: Path, spec: ImageSpec) -> None:
    """A finished shard is reused only when its files are what its JSON recorded (an older
    JSON without a record: when the shard's header and size are right)."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        count = meta["count"]
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count {count!r}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"prepared: {meta_path} is damaged ({exc}); delete it to prepare "
                        "its shard again") from None
    shard = out / f"shard-{number:05d}.npy"
    if "sha256" not in meta:
        check_shard_header(shard, count, spec.shape())
        return
    check_file(shard, meta, meta_path)
    if spec.classes and "labels_sha256" in meta:
        check_file(out / labels_file(number), _labels_record(meta), meta_path)


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a finished preparation (a clear error when there is none)."""
    path = root / MANIFEST
    if not path.exists():
        hint = " (an unfinished preparation: run 'ganforge data prepare' again to finish it)" \
            if (root / SOURCE).exists() else ""
        raise DataError(f"prepared: no {MANIFEST} in {str(root)!r}{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        return manifest
    except (ValueError, KeyError) as exc:
        raise DataError(f"prepared: {path} is not a ganforge manifest: {exc}") from None


def _read_labels(path: Path, count: int, classes: int) -> torch.Tensor:
    """Shard labels from ``path``: int64, ``count`` of them, each in ``[0, classes)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(path.read_bytes())
    except (OSError, SafetensorError) as exc:
        raise DataError(f"prepared: cannot read labels {str(path)!r}: "
                        f"{' '.join(str(exc).split())}") from None
    labels = tensors.get("labels")
    if labels is None or labels.dtype != torch.int64 or labels.shape != (count,):
        raise DataError(f"prepared: {str(path)!r} does not hold {count} int64 labels")
    if count and not (int(labels.min()) >= 0 and int(labels.max()) < classes):
        raise DataError(f"prepared: {str(path)!r} holds labels outside 0 to {classes - 1}")
    return labels


class PreparedDataset(Uint8ImageDataset):
    """Images decoded once by ``ganforge data prepare``, read at memory speed; with their
    labels when the source was labelled (``classes``, checked against the folder)."""

    @attrs.frozen
    class Params:
        """Where the prepared folder is and how to hold it."""

        root: str = param(doc="folder written by 'ganforge data prepare'")
        image_size: int = param(64, "must equal the prepared size (checked)",
                                validator=image_size_validator)
        width: int | None = width_param("must equal the prepared width (checked)")
        channels: int = param(3, "must equal the prepared channels (checked)",
                              validator=channels_validator)
        in_memory: str = param("auto", "'auto' (on the training device when it fits, else "
                               "memory-mapped), 'none' (memory-mapped), 'host' or 'device' "
                               "(whole set on the training device)",
                               validator=attrs.validators.in_(["auto", "none", "host",
                                                               "device"]))
        hflip: bool = param(False, "mirror images left-right at random during training")
        classes: int = param(0, "must equal the prepared set's classes (checked; 0: "
                             "unlabelled); 'data prepare' prints it",
                             validator=classes_validator)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.root = Path(params.root).expanduser()
        manifest = read_manifest(self.root)
        spec = manifest["image_spec"]
        width = spec.get("width", spec["size"])
        asked = sized_spec(params).width
        if (spec["size"], width, spec["channels"]) != (params.image_size, asked,
                                                        params.channels):
            raise DataError(
                f"prepared: {str(self.root)!r} holds {spec['channels']}x{spec['size']}x"
                f"{width} images but the recipe asks for {params.channels}x"
                f"{params.image_size}x{asked}; prepare it again at that size")
        held = int(spec.get("classes", 0))
        if held != params.classes:
            holds = f"images labelled with {held} classes" if held else "unlabelled images"
            raise DataError(f"prepared: {str(self.root)!r} holds {holds} but the recipe asks "
                            f"for {params.classes} classes; set dataset.classes = {held}")
        #: What the folder was made from: ``{"use": name, **params}``.
        self.source: dict[str, Any] = manifest["source"]
        shards = manifest["shards"]
        self.files = [self.root / s["file"] for s in shards]
        for path, record in zip(self.files, shards, strict=True):  # names a damaged shard
            check_shard_header(path, record["count"],
                               (spec["channels"], spec["size"], width),
                               record.get("bytes"))
        counts = [s["count"] for s in shards]
        self.starts = [0, *np.cumsum(counts).tolist()]
        self.length = int(self.starts[-1])
        #: The class label of every image (int64), or None for an unlabelled set.
        self.labels: torch.Tensor | None = None
        manifest_path = self.root / MANIFEST
        if held:
            label_files = [self.root / str(s.get("labels", labels_file(n)))
                           for n, s in enumerate(shards)]
            for path, record in zip(label_files, shards, strict=True):
                if "labels_sha256" in record:
                    check_file(path, _labels_record(record), manifest_path)
            self.labels = torch.cat([_read_labels(path, s["count"], held)
                                     for path, s in zip(label_files, shards, strict=True)])
        self._shards: dict[int, np.ndarray] = {}
        self._resident: torch.Tensor | None = None
        self._records = shards
        if params.in_memory in ("host", "device"):
            self._load_whole()

    def _load_whole(self) -> torch.Tensor:
        """Read every shard into one tensor (every byte is read: its SHA-256 is checked
        too)."""
        if self._resident is None:
            manifest_path = self.root / MANIFEST
            for path, record in zip(self.files, self._records, strict=True):
                if "sha256" in record:
                    check_file(path, record, manifest_path)
            self._resident = torch.from_numpy(np.concatenate(
                [np.load(f, allow_pickle=False) for f in self.files]))
        return self._resident

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return sized_spec(params, params.classes)

    @property
    def targets(self) -> torch.Tensor | None:
        """Every image's class label, or None for an unlabelled set."""
        return self.labels

    def item_label(self, index: int) -> int | None:
        if self.labels is None:
            return None
        if not 0 <= index < self.length:
            raise IndexError(index)
        return int(self.labels[index])

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = {}  # workers re-open their own memory maps
        return state

    def _array(self, shard: int) -> np.ndarray:
        """Shard ``shard`` memory-mapped (opened on first use, so an error names it)."""
        if shard not in self._shards:
            self._shards[shard] = np.load(self.files[shard], mmap_mode="r", allow_pickle=False)
        return self._shards[shard]

    def uint8_item(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._resident is not None:
            return self._resident[index]
        shard = bisect.bisect_right(self.starts, index) - 1
        try:
            return torch.from_numpy(np.array(self._array(shard)[index - self.starts[shard]]))
        except (OSError, ValueError) as exc:
            raise BadImage(f"prepared: cannot read image {index} from "
                           f"{self.files[shard]}: {exc}") from None

    def resident_images(self) -> torch.Tensor | None:
        """The whole set: held since it was opened (``host``, ``device``), read now when
        the trainer holds an ``auto`` set on the device, else None (memory-mapped)."""
        if self.params.in_memory == "auto":
            return self._load_whole()
        return self._resident

    def resident_labels(self) -> torch.Tensor | None:
        return self.labels if self._resident is not None else None

    @property
    def residency(self) -> str:
        return self.params.in_memory
