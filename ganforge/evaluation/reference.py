"""What real-image statistics were computed from: the dataset's identity.

A dataset table as written is not an identity: ``root = "data/faces"`` names another folder
from every working directory, and images replaced in place keep their params. The identity
of a dataset is therefore its params with every path param (``root``, ``path``, ``*_root``,
``*_path``) resolved to an absolute path, plus a fingerprint of what is there: the listing
of every file under it (relative path, size, modification time in ns), hashed. For an LSUN
root that listing holds each ``data.mdb``'s size and time; datasets without a path
(``digits``, ``synthetic``) are identified by their params alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Folders under a dataset root that ganforge derives from the data (the lmdb key index);
#: they are rebuilt from the data, so they are not part of its content.
DERIVED_FOLDERS = frozenset({".ganforge-index"})

#: How many directory entries are listed between two calls of ``poll``.
_POLL_EVERY = 1000

#: Called now and then during a long walk; it raises to end the walk (a stop request).
Poll = Callable[[], None]


def is_path_param(name: str) -> bool:
    """Whether a dataset param names a place on disk (``root``, ``path``, ``*_root``, ...)."""
    return name in ("root", "path") or name.endswith(("_root", "_path"))


def resolve_path(value: str) -> Path:
    """``value`` as the datasets read it (``~`` expanded, relative to the working
    directory), made absolute with symbolic links resolved."""
    return Path(value).expanduser().resolve()


def resolved_paths(table: Mapping[str, Any]) -> dict[str, str]:
    """The table's path params, each resolved to an absolute path."""
    return {name: str(resolve_path(value)) for name, value in table.items()
            if is_path_param(name) and isinstance(value, str) and value}


def _listing(folder: Path, prefix: str, digest: Any, counter: list[int],
             poll: Poll | None) -> None:
    """Feed every file under ``folder`` (sorted, so the order is the same everywhere) to
    ``digest`` as ``relative path, size, mtime_ns``. Symbolic links to folders are not
    followed, as the datasets' own recursive listing does not follow them."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        digest.update(f"{prefix}\0unreadable {type(exc).__name__}\n".encode())
        return
    for entry in entries:
        counter[0] += 1
        if poll is not None and counter[0] % _POLL_EVERY == 0:
            poll()
        relative = f"{prefix}{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in DERIVED_FOLDERS:
                    _listing(Path(entry.path), f"{relative}/", digest, counter, poll)
                continue
            stat = entry.stat()  # follows a link to a file: its target is what is read
        except OSError:
            digest.update(f"{relative}\0unreadable\n".encode("utf-8", "surrogateescape"))
            continue
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                      .encode("utf-8", "surrogateescape"))


def content_fingerprint(path: Path, poll: Poll | None = None) -> str:
    """SHA-256 (hex) of what is at ``path``: a file's size and modification time, or the
    listing of every file under a folder; ``"missing"`` when nothing is there. ``poll`` is
    called every thousand entries of a folder (a million-file folder takes seconds)."""
    digest = hashlib.sha256()
    if path.is_dir():
        _listing(path, "", digest, [0], poll)
    elif path.exists():
        stat = path.stat()
        digest.update(f"file\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        return "missing"
    return digest.hexdigest()


def dataset_identity(table: Mapping[str, Any], roots: Mapping[str, str] | None = None,
                     poll: Poll | None = None) -> dict[str, Any]:
    """``{"dataset": params with paths absolute, "content": {param: fingerprint}}``.

    ``roots`` are the path params already resolved (by :func:`resolved_paths` when the
    dataset was opened, since the working directory may have changed); by default they are
    resolved now.
    """
    roots = dict(resolved_paths(table) if roots is None else roots)
    content = {name: content_fingerprint(Path(path), poll) for name, path in roots.items()}
    return {"dataset": {**table, **roots}, "content": content}
