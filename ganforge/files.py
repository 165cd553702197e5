"""Old home of :mod:`ganforge.io.files`, kept so that ``ganforge.files`` imports go on
working: this name is that module (setting an attribute here sets it there)."""

from __future__ import annotations

import sys

from .io import files as _files
from .io.files import (
    TEMPORARY_SUFFIX,
    JsonLines,
    fsync_folder,
    read_jsonl,
    read_npy_header,
    temporary_path,
    write_bytes_atomic,
    write_text_atomic,
    writing,
)

__all__ = [
    "TEMPORARY_SUFFIX", "JsonLines", "fsync_folder", "read_jsonl", "read_npy_header",
    "temporary_path", "write_bytes_atomic", "write_text_atomic", "writing",
]

sys.modules[__name__] = _files
