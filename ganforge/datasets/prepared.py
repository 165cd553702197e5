"""Prepared datasets: any dataset decoded once into uint8 shards read at memory speed.

``prepare_dataset`` writes ``shard-00000.npy`` files (uint8, NCHW, ``allow_pickle`` off)
plus one ``shard-00000.json`` per shard (its count and the images it skipped); a shard
counts as done when its JSON exists, which is written after the array is renamed into
place, so an interrupted preparation resumes with the first unfinished shard.
``manifest.json``, written last, records what the folder was made from: the dataset's
registered name and params, the image shape and the count.

The ``prepared`` dataset memory-maps the shards (``in_memory = "none"``), or holds them
whole in host memory (``"host"``) or on the training device (``"device"``, where the
trainer indexes batches with no data loader at all).
"""

from __future__ import annotations

import bisect
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ..errors import DataError, UsageError
from ..interfaces import Dataset, ImageSpec
from ..params import param
from .common import Uint8ImageDataset, channels_validator, image_size_validator
from .decoding import BadImage, to_uint8
from .policy import Skipped
from .worker_errors import WorkerErrorsUnwrapped

FORMAT = 1
MANIFEST = "manifest.json"
SOURCE = "source.json"


def uint8_item(dataset: Dataset, index: int) -> torch.Tensor | Skipped:
    """Item ``index`` as uint8 CHW: exact for file datasets, quantised for the others."""
    own = getattr(dataset, "uint8_item", None)
    if own is not None:
        return own(index)
    item = dataset[index]
    if isinstance(item, Skipped):
        return item
    return to_uint8(item)


class _Uint8View(torch.utils.data.Dataset):
    """Picklable adapter so loader workers return uint8 items (or Skipped markers)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor | Skipped:
        return uint8_item(self.dataset, index)


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


def prepare_dataset(dataset: Dataset, source: dict[str, Any], out: Path, *,
                    shard_size: int = 4096, workers: int | None = None,
                    progress: bool = True) -> PrepareReport:
    """Decode every image of ``dataset`` once into uint8 shards under ``out``.

    ``source`` (``{"use": name, **params}``) is recorded in the manifest. Re-running on the
    same ``out`` resumes: finished shards are kept; a folder prepared from a different
    source is refused.
    """
    from ..progress_bars import progress_bar

    started = time.perf_counter()
    spec = dataset.image_spec
    total = len(dataset)
    plan = {"format": FORMAT, "source": source, "image_spec": attrs.asdict(spec),
            "total": total, "shard_size": shard_size}
    out.mkdir(parents=True, exist_ok=True)
    existing = out / SOURCE
    if existing.exists():
        if json.loads(existing.read_text(encoding="utf-8")) != plan:
            raise UsageError(f"{out} holds a preparation of another dataset or size; "
                             "choose another --out")
    else:
        _atomic_json(existing, plan)
    workers = (os.cpu_count() or 1) if workers is None else workers
    shards = [range(s, min(s + shard_size, total)) for s in range(0, total, shard_size)]
    written = reused = 0
    with progress_bar("preparing", progress) as bar:
        task = bar.add_task("prepare", total=total)
        for number, indices in enumerate(shards):
            meta_path = out / f"shard-{number:05d}.json"
            if meta_path.exists():
                reused += 1
                bar.advance(task, len(indices))
                continue
            images: list[torch.Tensor] = []
            skipped: list[dict[str, str]] = []
            loader = DataLoader(Subset(_Uint8View(dataset), list(indices)), batch_size=64,
                                num_workers=workers, collate_fn=_as_list)
            for items in WorkerErrorsUnwrapped(loader):
                for item in items:
                    if isinstance(item, Skipped):
                        skipped.append({"key": item.key, "reason": item.reason})
                    else:
                        images.append(item)
                bar.advance(task, len(items))
            array = (torch.stack(images).numpy() if images
                     else np.zeros((0, *spec.shape()), dtype=np.uint8))
            tmp = out / f".shard-{number:05d}.npy.tmp"
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out / f"shard-{number:05d}.npy")
            _atomic_json(meta_path, {"count": len(images), "first_index": indices.start,
                                     "skipped": skipped})
            written += 1
    metas = [json.loads((out / f"shard-{n:05d}.json").read_text()) for n in range(len(shards))]
    count = sum(m["count"] for m in metas)
    skipped_total = sum(len(m["skipped"]) for m in metas)
    if count == 0:
        raise DataError(f"{out}: every image of the dataset was skipped")
    _atomic_json(out / MANIFEST, {
        **plan, "count": count, "skipped": skipped_total,
        "shards": [{"file": f"shard-{n:05d}.npy", "count": m["count"]}
                   for n, m in enumerate(metas)],
    })
    return PrepareReport(out, count, skipped_total, written, reused,
                         time.perf_counter() - started)


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


class PreparedDataset(Uint8ImageDataset):
    """Images decoded once by ``ganforge data prepare``, read at memory speed."""

    @attrs.frozen
    class Params:
        """Where the prepared folder is and how to hold it."""

        root: str = param(doc="folder written by 'ganforge data prepare'")
        image_size: int = param(64, "must equal the prepared size (checked)",
                                validator=image_size_validator)
        channels: int = param(3, "must equal the prepared channels (checked)",
                              validator=channels_validator)
        in_memory: str = param("none", "'none' (memory-mapped), 'host' or 'device' (whole set "
                               "on the training device)",
                               validator=attrs.validators.in_(["none", "host", "device"]))
        hflip: bool = param(False, "mirror images left-right at random during training")

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.root = Path(params.root).expanduser()
        manifest = read_manifest(self.root)
        spec = manifest["image_spec"]
        if (spec["size"], spec["channels"]) != (params.image_size, params.channels):
            raise DataError(
                f"prepared: {str(self.root)!r} holds {spec['channels']}x{spec['size']}x"
                f"{spec['size']} images but the recipe asks for {params.channels}x"
                f"{params.image_size}x{params.image_size}; prepare it again at that size")
        #: What the folder was made from: ``{"use": name, **params}``.
        self.source: dict[str, Any] = manifest["source"]
        self.files = [self.root / s["file"] for s in manifest["shards"]]
        counts = [s["count"] for s in manifest["shards"]]
        self.starts = [0, *np.cumsum(counts).tolist()]
        self.length = int(self.starts[-1])
        self._shards: list[np.ndarray] | None = None
        self._resident: torch.Tensor | None = None
        if params.in_memory != "none":
            self._resident = torch.from_numpy(np.concatenate(
                [np.load(f, allow_pickle=False) for f in self.files]))

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = None  # workers re-open their own memory maps
        return state

    def _arrays(self) -> list[np.ndarray]:
        if self._shards is None:
            self._shards = [np.load(f, mmap_mode="r", allow_pickle=False) for f in self.files]
        return self._shards

    def uint8_item(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._resident is not None:
            return self._resident[index]
        shard = bisect.bisect_right(self.starts, index) - 1
        try:
            return torch.from_numpy(np.array(self._arrays()[shard][index - self.starts[shard]]))
        except (OSError, ValueError) as exc:
            raise BadImage(f"prepared: cannot read image {index} from "
                           f"{self.files[shard]}: {exc}") from None

    def resident_images(self) -> torch.Tensor | None:
        return self._resident

    @property
    def residency(self) -> str:
        return self.params.in_memory
