"""The list of keys of an lmdb database, built once and cached in a safe format.

Walking the keys of a 3-million-image LSUN category takes minutes, so the list is stored
as two ``.npy`` arrays (the keys' bytes end to end, and their offsets; ``allow_pickle`` off)
and a JSON fingerprint of the database (size and modification time of ``data.mdb``, entry
count). The cache lives beside the data (``<root>/.ganforge-index/<name>/``) when that folder
is writable, else in the user cache directory; it is rebuilt whenever the fingerprint
changes. Readers memory-map the arrays, so every data-loader worker shares one copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import user_cache_dir
from ..errors import DataError

INDEX_FORMAT = 1


#: lmdb allows one open environment per database per process, so handles are shared within
#: a process. LMDB handles must not cross a fork either: they are closed just before any
#: fork (data-loader workers) and reopened lazily on both sides.
_OPEN: dict[str, Any] = {}


def close_lmdb_handles() -> None:
    """Close every lmdb handle of this process (they reopen on next use); needed before
    this process opens one of those databases for writing."""
    for env in _OPEN.values():
        env.close()
    _OPEN.clear()


os.register_at_fork(before=close_lmdb_handles)


def open_lmdb(path: Path) -> Any:
    """This process's read-only, lock-free handle on the lmdb folder ``path``.

    Raises :class:`DataError` naming ``data.mdb`` when it is not an lmdb or is shorter than
    lmdb's own meta pages say (a truncated copy or download).
    """
    import lmdb

    key = str(path.resolve())
    env = _OPEN.get(key)
    if env is None:
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False,
                            meminit=False, max_readers=1024, subdir=True)
        except lmdb.Error as exc:
            raise DataError(f"{path / 'data.mdb'}: not a readable lmdb: {exc}") from None
        try:
            _check_complete(env, path / "data.mdb")
        except BaseException:
            env.close()
            raise
        _OPEN[key] = env
    return env


def _check_complete(env: Any, data: Path) -> None:
    """Refuse a ``data.mdb`` shorter than the pages its meta page says are in use.

    lmdb maps the file and reads pages through the map: a page past the end of a truncated
    file kills the process with SIGBUS, no exception, no message. Opening reads only the
    two meta pages at the start of the file, so the size is checked right after opening,
    before any other page is touched.
    """
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    actual = data.stat().st_size
    if actual < needed:
        raise DataError(f"{data}: truncated: lmdb needs {needed} bytes but the file has "
                        f"{actual}; copy or download it again")


def lmdb_read_error(path: Path, exc: Exception, what: str) -> DataError:
    """A one-line error for an lmdb failure while reading ``what`` from the lmdb folder
    ``path`` (corrupted pages, for one), naming its ``data.mdb``."""
    return DataError(f"{path / 'data.mdb'}: cannot read {what}: {exc}; the database is "
                     f"damaged, copy or download it again")


def fingerprint(path: Path, entries: int) -> dict[str, Any]:
    """What identifies one state of the database."""
    data = path / "data.mdb"
    stat = data.stat()
    return {"format": INDEX_FORMAT, "path": str(path.resolve()), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "entries": entries}


class KeyIndex:
    """Keys of one lmdb, indexable like a list of bytes, memory-mapped from the cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._blob: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        self._count = int(json.loads((folder / "index.json").read_text())["count"])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._blob is None or self._offsets is None:
            self._blob = np.load(self.folder / "keys.npy", mmap_mode="r", allow_pickle=False)
            self._offsets = np.load(self.folder / "offsets.npy", mmap_mode="r",
                                    allow_pickle=False)
        return self._blob, self._offsets

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> bytes:
        blob, offsets = self._arrays()
        return blob[offsets[i]:offsets[i + 1]].tobytes()

    def __getstate__(self) -> dict[str, Any]:  # workers re-open the memory maps themselves
        return {"folder": self.folder, "_count": self._count, "_blob": None, "_offsets": None}


def _cache_folders(lmdb_path: Path) -> list[Path]:
    digest = hashlib.sha256(str(lmdb_path.resolve()).encode()).hexdigest()[:16]
    return [lmdb_path.parent / ".ganforge-index" / lmdb_path.name,
            user_cache_dir("lmdb-index", f"{lmdb_path.name}-{digest}")]


def _valid(folder: Path, expected: dict[str, Any]) -> bool:
    try:
        meta = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("fingerprint") == expected and (folder / "keys.npy").exists() \
        and (folder / "offsets.npy").exists()


def _write(folder: Path, keys: list[bytes], fp: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    blob = np.frombuffer(b"".join(keys), dtype=np.uint8)
    for name, array in (("keys.npy", blob), ("offsets.npy", offsets)):
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, folder / name)
    tmp = folder / ".index.json.tmp"
    tmp.write_text(json.dumps({"fingerprint": fp, "count": len(keys)}))
    os.replace(tmp, folder / "index.json")  # written last: its presence means complete


def load_key_index(lmdb_path: Path, progress: bool = True) -> KeyIndex:
    """The cached key index of ``lmdb_path``, built (with a progress bar) if missing or stale."""
    env = open_lmdb(lmdb_path)
    entries = env.stat()["entries"]
    fp = fingerprint(lmdb_path, entries)
    folders = _cache_folders(lmdb_path)
    for folder in folders:
        if _valid(folder, fp):
            return KeyIndex(folder)
    keys = _read_keys(env, entries, lmdb_path, progress)
    for folder in folders:
        try:
            _write(folder, keys, fp)
        except OSError:
            continue  # read-only data folder: fall back to the user cache
        return KeyIndex(folder)
    raise DataError(f"{lmdb_path}: cannot write a key index beside the data nor in "
                    f"{folders[-1]}")


def _read_keys(env: Any, entries: int, lmdb_path: Path, progress: bool) -> list[bytes]:
    import lmdb

    from ..progress_bars import progress_bar

    label = lmdb_path.name
    keys: list[bytes] = []
    with progress_bar(f"indexing {label}", progress, transient=True) as bar, \
            env.begin() as txn:
        task = bar.add_task(f"indexing {label}", total=entries)
        try:
            for i, key in enumerate(txn.cursor().iternext(keys=True, values=False)):
                keys.append(bytes(key))
                if i % 10_000 == 0:
                    bar.update(task, completed=i)
        except lmdb.Error as exc:
            raise lmdb_read_error(lmdb_path, exc, "its keys") from None
    return keys
