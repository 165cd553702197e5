"""Safe file primitives shared by every writer and reader of run artefacts.

- :func:`write_bytes_atomic` / :func:`write_text_atomic`: a file is either complete under
  its final name or absent. The temporary file's name is unique to its writer (process and
  a random part), so two writers never delete or rename each other's half-written file.
- :func:`read_jsonl`: a JSON-lines log whose last line was torn by a crash or a full disk
  (half an object, NUL bytes) still reads; the torn tail is reported, not fatal.
- :func:`writing`: an ``OSError`` while writing (full disk, read-only folder) becomes one
  :class:`~ganforge.core.errors.StorageError` line naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import StorageError

#: Suffix of every temporary file ganforge writes; :func:`temporary_path` names them
#: ``.<final name>.<pid>.<random>.tmp``.
TEMPORARY_SUFFIX = ".tmp"


def temporary_path(path: Path) -> Path:
    """A hidden temporary name beside ``path``, unique to this writer."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
                          f"{TEMPORARY_SUFFIX}")


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (where the platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data``: temporary file, flush, fsync, rename, fsync the
    folder. On any failure the old file is untouched and no temporary is left behind; an
    ``OSError`` becomes a :class:`StorageError` naming ``path``."""
    tmp = temporary_path(path)
    with writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_folder(path.parent)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into one :class:`StorageError` line naming
    ``path`` (the reason too: full disk, read-only file system, permission)."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


@attrs.frozen
class JsonLines:
    """A JSON-lines file read back: its objects, and what was dropped as a torn tail."""

    records: list[dict[str, Any]]
    #: Bytes of a torn last line that were dropped (0: the file ended cleanly).
    torn_bytes: int = 0

    def note(self, path: Path) -> str | None:
        """One line for the user when a torn last line was dropped, else None."""
        if not self.torn_bytes:
            return None
        return (f"{path}: dropped a torn last line ({self.torn_bytes} bytes, left by a crash "
                "or a full disk)")


def read_jsonl(path: Path) -> JsonLines:
    """Read a JSON-lines log, tolerating a torn last line.

    The last line is torn when it does not end in a newline and does not parse, or holds
    NUL bytes (what a crash on some file systems leaves). A line that does not parse in
    the middle of the file is real damage: a :class:`StorageError` naming file and line.
    A missing file reads as empty.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JsonLines([])
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    position = 0
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        last = number == len(lines)
        end = position + len(raw) + (0 if last else 1)
        parsed = _parse_line(raw)
        if parsed is _BLANK:
            position = end
            continue
        if parsed is _TORN:
            if last or all(_parse_line(rest) is _BLANK for rest in lines[number:]):
                return JsonLines(records, len(data) - position)
            raise StorageError(f"{path}: line {number} is not a JSON object (the file is "
                               "damaged; remove that line to go on)")
        records.append(parsed)  # type: ignore[arg-type]
        position = end
    return JsonLines(records)


_BLANK = object()
_TORN = object()


def _parse_line(raw: bytes) -> object:
    """A line's JSON object, :data:`_BLANK` for an empty line, :data:`_TORN` otherwise."""
    if b"\x00" in raw:  # a crash can leave the file's end zero-filled
        return _TORN
    if not raw.strip():
        return _BLANK
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return _TORN
    return value if isinstance(value, dict) else _TORN


def read_npy_header(handle: Any) -> tuple[tuple[int, ...], bool, Any]:
    """Shape, Fortran order and dtype from the ``.npy`` header at ``handle``'s position
    (format 1.0 or 2.0; the handle is left at the start of the data). Reads no array data,
    so a size can be checked before anything is loaded; ValueError for another format."""
    import numpy as np

    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), bool(fortran), dtype
