"""Reading a safetensors file without trusting it: the one hardened reader behind
checkpoints and exported model folders.

Only regular files are opened (:func:`open_regular`: a FIFO or device named like a
checkpoint would block or never end). ganforge makes the checks the safetensors library
does not make: the header's length field is bounded before anything is parsed
(:func:`read_header_bytes`; a pickle or zip file gets a hint saying what it is), the header
is UTF-8 JSON with no key given twice, its ``__metadata__`` maps strings to strings, and
each tensor entry has exactly the fields ``dtype``, ``shape`` and ``data_offsets`` and a
dtype in :data:`DTYPES` (:func:`parse_safetensors_header`). The rest of the header (field
types, sizes against shapes and dtypes, offsets that tile the data section exactly, no data
after the last tensor) is checked by safetensors itself, when :func:`library_entries` opens
the file and when :func:`read_verified` loads the very bytes it checked, before any tensor
is made. Every refusal is one :class:`~ganforge.core.errors.CheckpointError` line naming the
file and the problem.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes

from .limits import MAX_HEADER_BYTES
from .refusals import (
    DuplicateKey,
    is_int,
    kind,
    library_problem,
    no_duplicate_keys,
    quoted,
    refusal,
)

#: The safetensors dtypes a checkpoint may hold: those ``safetensors.torch`` loads (the
#: library's header check also accepts F4, F6_* and F8_E8M0, which its loader then fails
#: on with a ``KeyError``).
DTYPES = frozenset({
    "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16",
    "F16", "BF16", "I32", "U32", "F32", "I64", "U64", "F64", "C64",
})
_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})


@attrs.frozen
class TensorInfo:
    """One tensor as the safetensors header describes it (no data read)."""

    dtype: str
    shape: tuple[int, ...]


def open_regular(path: Path) -> tuple[IO[bytes], int]:
    """Open ``path`` for reading and return it with its size, refusing anything but a
    regular file: a FIFO would block the reader forever, a device never ends. The open
    itself does not block (``O_NONBLOCK``), and the kind is checked on the opened file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise refusal(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refusal(path, f"not a checkpoint: {_file_kind(info.st_mode)}, not a regular "
                                "file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((word for test, word in kinds if test(mode)), "a special file")


def _looks_like(head: bytes) -> str:
    """A hint for a file that is plainly not safetensors."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "; it is a pickle file, and ganforge never unpickles checkpoints"
    if head.startswith(b"PK\x03\x04"):
        return "; it is a zip archive (torch.save?), and ganforge reads only safetensors"
    return ""


def read_header_bytes(f: IO[bytes], size: int, path: Path) -> bytes:
    """The safetensors header at the start of binary file ``f`` of ``size`` bytes. Its length
    field is checked against :data:`MAX_HEADER_BYTES` and the file's size before anything
    more is read, and a pickle or zip file is named as such."""
    head = f.read(8)
    if len(head) < 8:
        raise refusal(path, f"not a safetensors checkpoint ({size} bytes, too short for the "
                            "8-byte header length)")
    (length,) = struct.unpack("<Q", head)
    if length < 2:
        problem = f"header length {length} is too short for a JSON object"
    elif length > MAX_HEADER_BYTES:
        problem = f"header length {length} is over the {MAX_HEADER_BYTES}-byte limit"
    elif 8 + length > size:
        problem = f"header length {length} runs past the end of the file ({size} bytes)"
    else:
        problem = ""
    if problem:
        raise refusal(path, f"not a safetensors checkpoint: {problem}{_looks_like(head)}")
    raw = f.read(length)
    if len(raw) != length:
        raise refusal(path, "file shrank while its header was being read")
    return raw


def parse_safetensors_header(raw: bytes, path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The header's ``__metadata__`` and its tensor entries, with the checks safetensors does
    not make: no key given twice (JSON parsers disagree on which one wins), ``__metadata__``
    a JSON object of strings, and :func:`_check_entry` on every entry. The entries are
    otherwise unchecked: safetensors refuses bad types, shapes and offsets itself."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refusal(path, f"safetensors header is not valid UTF-8 (byte {exc.start} of "
                            "the header)") from None
    try:
        header = json.loads(text, object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise refusal(path, f"safetensors header has the key {quoted(exc.args[0])} "
                            "twice") from None
    except (ValueError, RecursionError) as exc:
        raise refusal(path, f"safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise refusal(path, f"safetensors header is not a JSON object ({kind(header)})")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise refusal(path, f"__metadata__ is not a JSON object ({kind(metadata)})")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise refusal(path, f"__metadata__ must map strings to strings; {quoted(key)} is "
                                f"{quoted(value, 30)} ({kind(value)})")
    for name, entry in header.items():
        _check_entry(name, entry, path)
    return metadata, header


def _check_entry(name: str, entry: Any, path: Path) -> None:
    """One tensor entry is a JSON object with exactly the fields ``dtype``, ``shape`` and
    ``data_offsets`` (safetensors ignores other fields) and a dtype in :data:`DTYPES`."""
    where = f"tensor {quoted(name)}"
    if not isinstance(entry, dict):
        raise refusal(path, f"{where}: entry is not a JSON object")
    if set(entry) != _TENSOR_FIELDS:
        raise refusal(path, f"{where}: entry has fields {quoted(sorted(entry))}, expected "
                            f"{quoted(sorted(_TENSOR_FIELDS))}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise refusal(path, f"{where}: unknown dtype {quoted(dtype, 30)}")
    shape = entry["shape"]
    if isinstance(shape, list) and any(is_int(n) and n >= 2**63 for n in shape):
        # safetensors accepts a zero-size tensor of any shape; torch cannot make one whose
        # dimension is past int64
        raise refusal(path, f"{where}: shape {quoted(shape, 60)} has a dimension past 2**63")


def read_checked_header(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``__metadata__`` and tensor entries of ``path``, checked by
    :func:`parse_safetensors_header` (not yet by the library: see :func:`library_entries`)."""
    try:
        f, size = open_regular(path)
        with f:
            return parse_safetensors_header(read_header_bytes(f, size, path), path)
    except OSError as exc:
        raise refusal(path, f"cannot read checkpoint: {exc.strerror or exc}") from None


def library_entries(path: Path, metadata: Mapping[str, str],
                    tensors: Mapping[str, Any]) -> dict[str, TensorInfo]:
    """The tensor entries as the safetensors library reads them from ``path``: it refuses
    a header whose types, shapes, dtypes or offsets are wrong, or whose tensors do not
    tile the data section exactly. A file that is no longer the one just parsed (other
    metadata or tensor names) is refused."""
    try:
        with safe_open(str(path), framework="pt") as st:
            if (st.metadata() or {}) != metadata or set(st.keys()) != set(tensors):
                raise refusal(path, "file changed while being read (header)")
            slices = {name: st.get_slice(name) for name in tensors}  # in the header's order
            return {name: TensorInfo(s.get_dtype(), tuple(s.get_shape()))
                    for name, s in slices.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise refusal(path, library_problem(exc)) from None


def read_verified(path: Path, what: str,
                  before_data: Callable[[dict[str, str]], Any] | None = None,
                  ) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of safetensors file ``path`` (``what`` names it in a
    refusal: ``checkpoint``, ``weights``).

    The header is checked (:func:`parse_safetensors_header`) and handed to ``before_data``
    (which refuses by raising) before the data section is read; the bytes handed to the
    safetensors library are the very bytes that were checked, and it checks the rest of
    the header itself before it makes any tensor."""
    try:
        f, size = open_regular(path)
        with f:
            raw = read_header_bytes(f, size, path)
            metadata = parse_safetensors_header(raw, path)[0]
            if before_data is not None:
                before_data(metadata)
            f.seek(0)
            data = f.read(size + 1)
    except OSError as exc:
        raise refusal(path, f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) != size:
        raise refusal(path, f"file changed while being read ({size} bytes, then {len(data)})")
    # The bytes loaded must hold the very header that was checked.
    if data[:8 + len(raw)] != struct.pack("<Q", len(raw)) + raw:
        raise refusal(path, "file changed while being read (header)")
    try:
        tensors = load_bytes(data)
    except SafetensorError as exc:
        raise refusal(path, library_problem(exc)) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise refusal(path, f"cannot read tensors: {exc}") from None
    return metadata, tensors
