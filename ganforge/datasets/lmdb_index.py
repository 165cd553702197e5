"""The list of keys of an lmdb database, built once and cached in a safe format.

Walking the keys of a 3-million-image LSUN category takes minutes, so the list is stored
as two ``.npy`` arrays (the keys' bytes end to end, and their offsets; ``allow_pickle`` off)
and a JSON fingerprint of the database (size and modification time of ``data.mdb``, entry
count). The cache lives beside the data (``<root>/.ganforge-index/<name>/``) when that folder
is writable, else in the user cache directory; it is rebuilt whenever the fingerprint
changes. Readers memory-map the arrays, so every data-loader worker shares one copy.

The keys are walked in a child process (``python -m ganforge.datasets.lmdb_index``): on a
damaged page lmdb may fail one of its own assertions (SIGABRT) or read outside the map
(SIGSEGV, SIGBUS), which no Python code can catch. A child that dies so becomes one
:class:`DataError` naming ``data.mdb``. The child streams the keys back through a pipe in
chunks, so the parent keeps the progress bar.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.cache import user_cache_dir
from ..core.errors import DataError

if TYPE_CHECKING:  # numpy is imported where used: the indexing child starts without it
    import numpy as np

INDEX_FORMAT = 1

#: Keys per message from the indexing child (and per progress-bar update).
CHUNK = 10_000

#: Signals a process dies of when lmdb fails on a damaged page (an assertion, a bad pointer).
CRASH_SIGNALS = frozenset(getattr(signal, name) for name in (
    "SIGABRT", "SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGTRAP", "SIGSYS")
    if hasattr(signal, name))


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


def lmdb_read_error(path: Path, exc: Exception | str, what: str) -> DataError:
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
            import numpy as np

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


def _write(folder: Path, keys: tuple[np.ndarray, np.ndarray], fp: dict[str, Any]) -> None:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    blob, offsets = keys
    for name, values in (("keys.npy", blob), ("offsets.npy", offsets)):
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, values, allow_pickle=False)
        os.replace(tmp, folder / name)
    tmp = folder / ".index.json.tmp"
    tmp.write_text(json.dumps({"fingerprint": fp, "count": len(offsets) - 1}))
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
    keys = _read_keys(lmdb_path, entries, progress)
    for folder in folders:
        try:
            _write(folder, keys, fp)
        except OSError:
            continue  # read-only data folder: fall back to the user cache
        return KeyIndex(folder)
    raise DataError(f"{lmdb_path}: cannot write a key index beside the data nor in "
                    f"{folders[-1]}")


def _read_keys(lmdb_path: Path, entries: int,
               progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The keys of ``lmdb_path`` in lmdb's order, as (bytes end to end, offsets), walked in
    a child process with a progress bar here."""
    from ..core.progress_bars import progress_bar

    label = lmdb_path.name
    data = lmdb_path / "data.mdb"
    with progress_bar(f"indexing {label}", progress, transient=True) as bar, \
            tempfile.TemporaryFile() as child_stderr:
        task = bar.add_task(f"indexing {label}", total=entries)
        try:
            child = subprocess.Popen(_child_command(lmdb_path), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=child_stderr,
                                     env=_child_environment())
        except OSError as exc:
            raise DataError(f"{data}: cannot start the process that reads its keys: "
                            f"{exc}") from None
        with child:  # closes the pipe and waits for the child
            try:
                keys = _receive_keys(child.stdout, lambda n: bar.update(task, completed=n))
            except BaseException:  # interrupted here (Ctrl-C): the child must not outlive us
                child.kill()
                raise
        if isinstance(keys, tuple):  # the end message came: every key is there
            return keys
        if isinstance(keys, str):  # lmdb raised an error in the child: its message
            raise lmdb_read_error(lmdb_path, keys, "its keys")
        child_stderr.seek(0)
        lines = child_stderr.read().decode("utf-8", "replace").strip().splitlines()
    # The child's last words (lmdb's failed assertion, a traceback) are the cause (--debug).
    cause = ChildProcessError("\n".join(lines[-20:]) or f"exit status {child.returncode}")
    raise _child_failure(data, child.returncode, lines[-1] if lines else "") from cause


def _child_command(lmdb_path: Path) -> list[str]:
    return [sys.executable, "-m", "ganforge.datasets.lmdb_index", str(lmdb_path), str(CHUNK)]


def _child_environment() -> dict[str, str]:
    """This environment, with this process's ``sys.path`` so that the child imports the same
    ganforge and lmdb (as ``multiprocessing``'s spawn does)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _child_failure(data: Path, returncode: int, last_line: str) -> DataError:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode in CRASH_SIGNALS:
            return DataError(f"{data}: the database is damaged (reading its keys crashed "
                             f"lmdb: {name}); copy or download it again")
        return DataError(f"{data}: reading its keys was stopped by {name} (killed from "
                         f"outside, out of memory for one; not a sign of damage); try again")
    detail = f": {last_line}" if last_line else ""
    return DataError(f"{data}: the process reading its keys failed with exit status "
                     f"{returncode}{detail}")


def _read_exact(stream: Any, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _receive_keys(stream: Any, advance: Callable[[int], object]
                  ) -> tuple[np.ndarray, np.ndarray] | str | None:
    """Read the child's messages: the keys as (blob, offsets); lmdb's error message; or
    None when the stream ends early (the child died)."""
    import numpy as np

    blobs: list[bytes] = []
    lengths: list[np.ndarray] = []
    received = 0
    while (kind := _read_exact(stream, 1)) is not None:
        if kind == b"E":
            offsets = np.zeros(received + 1, dtype=np.int64)
            if lengths:
                np.cumsum(np.concatenate(lengths), out=offsets[1:])
            return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets
        header = _read_exact(stream, 16)
        if header is None:
            return None
        count, size = struct.unpack("<QQ", header)
        if kind == b"X":
            message = _read_exact(stream, size)
            return None if message is None else message.decode("utf-8", "replace")
        if kind != b"K":
            return None
        sizes = _read_exact(stream, np.dtype(np.uintc).itemsize * count)
        blob = _read_exact(stream, size)
        if sizes is None or blob is None:
            return None
        lengths.append(np.frombuffer(sizes, dtype=np.uintc).astype(np.int64))
        blobs.append(blob)
        received += count
        advance(received)
    return None


def _send_keys(path: str, chunk_size: int) -> int:
    """In the child: walk the keys of the lmdb folder ``path`` and write them to stdout,
    ``chunk_size`` keys a message.

    Messages: ``K`` count size (little-endian uint64s), then ``count`` key lengths (C
    unsigned ints) and ``size`` bytes of keys; ``X`` 0 size, then lmdb's error message;
    ``E`` at the end.
    """
    import lmdb

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the message stream

    def send(chunk: list[bytes]) -> None:
        sizes = array("I", map(len, chunk))  # C unsigned ints, as np.uintc in the parent
        out.write(b"K" + struct.pack("<QQ", len(chunk), sum(sizes)) + sizes.tobytes()
                  + b"".join(chunk))
        out.flush()  # also ends this process when the parent is gone (EPIPE)

    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                        subdir=True)
        chunk: list[bytes] = []
        with env.begin() as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                chunk.append(bytes(key))
                if len(chunk) == chunk_size:
                    send(chunk)
                    chunk = []
        send(chunk)
    except lmdb.Error as exc:
        message = str(exc).encode("utf-8", "replace")
        out.write(b"X" + struct.pack("<QQ", 0, len(message)) + message)
        out.flush()
        return 0
    out.write(b"E")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_send_keys(sys.argv[1], int(sys.argv[2])))
