"""The files of a prepared folder (``ganforge data prepare``): whose they are, and whether
they are still what was written.

- :func:`check_owned`: ``prepare`` writes into a folder only when nothing there is a file
  it would overwrite that it did not write itself (a ``manifest.json`` or ``shard-*``
  file in a folder without ganforge's ``source.json``, a manifest of something else).
- :func:`file_record` / :func:`check_file`: each shard and labels file is recorded, when
  written, with its size and SHA-256 (in the shard's JSON and in the manifest); a reused
  shard is checked against its record, and a damaged one is named.
- :func:`check_shard_header`: a shard's ``.npy`` header (uint8, the recorded number of
  images of the recorded shape) and size, checked when a set is opened without reading
  its images.

Every refusal is one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError, UsageError
from ..io.files import read_npy_header

MANIFEST = "manifest.json"
SOURCE = "source.json"
#: Bytes hashed at a time.
_CHUNK = 1 << 20


def file_record(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _shown(path: Path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)


def _read_json(path: Path) -> Any:
    """``path`` as JSON, or ``None`` when it is not readable JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def check_owned(out: Path, plan: Mapping[str, Any], manifest_format: int) -> bool:
    """Refuse (one :class:`UsageError` line, before anything is written) an ``out`` that is
    not a folder, or that holds files ``prepare`` would overwrite but did not write: a
    ``manifest.json`` or ``shard-*`` file with no ``source.json``, a ``source.json`` that is
    not one ganforge wrote, or a ``manifest.json`` of another preparation. Returns True
    when ``out`` holds a preparation of ``plan`` to resume."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {_shown(out)} is a file; give a folder for the prepared shards")
    if not out.is_dir():
        return False
    source = out / SOURCE
    if not source.exists():
        ours = sorted(p.name for p in out.iterdir()
                      if p.name == MANIFEST or p.name.startswith("shard-"))
        if ours:
            raise UsageError(f"{_shown(out)} holds {ours[0]!r} but no {SOURCE}: files ganforge "
                             "data prepare did not write there; choose another --out (nothing "
                             "was written)")
        return False
    saved = _read_json(source)
    if not isinstance(saved, dict) or saved.get("format") != plan["format"]:
        raise UsageError(f"{_shown(source)} is not a {SOURCE} ganforge data prepare wrote; "
                         "choose another --out (nothing was written)")
    if saved != plan:
        raise UsageError(f"{_shown(out)} holds a preparation of another dataset or size; "
                         "choose another --out")
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = _read_json(manifest_path)
        if not isinstance(manifest, dict) or manifest.get("format") != manifest_format \
                or manifest.get("source") != plan["source"]:
            raise UsageError(f"{_shown(manifest_path)} is not the manifest of this preparation; "
                             "choose another --out (nothing was written)")
    return True


def check_file(path: Path, record: Mapping[str, Any], recorded_in: Path) -> None:
    """Refuse ``path`` (one :class:`DataError` line naming it) when it is missing or its
    size or SHA-256 is not ``record``'s (what :func:`file_record` gave when it was
    written)."""
    hint = (f"delete it and {recorded_in.name} and run 'ganforge data prepare' again to "
            "write it anew")
    try:
        got = file_record(path)
    except OSError as exc:
        raise DataError(f"prepared: cannot read {_shown(path)}: {exc.strerror or exc}; "
                        f"{hint}") from None
    if got["bytes"] != record.get("bytes"):
        raise DataError(f"prepared: {_shown(path)} is damaged: {got['bytes']} bytes, "
                        f"{recorded_in.name} recorded {record.get('bytes')!r}; {hint}")
    if got["sha256"] != record.get("sha256"):
        raise DataError(f"prepared: {_shown(path)} is damaged: its SHA-256 is not the one "
                        f"{recorded_in.name} recorded when it was written; {hint}")


def check_shard_header(path: Path, count: int, image_shape: tuple[int, ...],
                       size: int | None = None) -> None:
    """Refuse a shard whose ``.npy`` header is not uint8 ``(count, *image_shape)`` in C
    order, or whose file is not exactly that header plus the data (``size``: the recorded
    size, when there is one); only the header is read."""
    where = f"prepared: shard {_shown(path)}"
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = read_npy_header(f)
            start = f.tell()
            actual = f.seek(0, 2)
    except OSError as exc:
        raise DataError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, EOFError) as exc:
        raise DataError(f"{where} is damaged: not a NumPy array file ({exc})") from None
    expected = tuple([count, *image_shape])
    if dtype != np.uint8 or fortran or tuple(shape) != expected:
        raise DataError(f"{where} is damaged: it holds {dtype} {list(shape)}, the manifest "
                        f"says uint8 {list(expected)}")
    if actual != start + math.prod(expected) or (size is not None and actual != size):
        raise DataError(f"{where} is damaged: {actual} bytes, its header and the manifest "
                        f"say {start + math.prod(expected) if size is None else size}")
