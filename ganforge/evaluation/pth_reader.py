"""Read the state dict of a PyTorch zip checkpoint (``torch.save``, torch >= 1.6) safely.

A ``.pth`` written by ``torch.save`` is a zip archive::

    <prefix>/data.pkl        the structure, as a pickle stream
    <prefix>/data/<key>      raw storage bytes, one member per storage
    <prefix>/byteorder       "little" or "big" (absent in old files: little)
    <prefix>/version         format version

Unpickling ``data.pkl`` would run whatever callables the file names, so a downloaded file
could execute code. This module never unpickles: it walks ``data.pkl`` with
:func:`pickletools.genops`, a pure opcode parser that executes nothing, and interprets the
small opcode subset a state dict uses with an explicit stack machine. The only globals it
accepts are ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter`` and the typed storage classes (``torch.FloatStorage``
and friends), and each of them is *interpreted* here, never imported or called. Any other
global, any other opcode, or any malformed structure raises
:class:`~ganforge.errors.CheckpointError` naming the file and the offender, before a single
tensor is handed back.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from pickletools import genops
from typing import IO, Any

import torch

from ganforge.errors import CheckpointError

__all__ = ["read_pth_state_dict"]

#: Largest ``data.pkl`` accepted; the structure of a state dict is a few hundred KiB at most.
MAX_STRUCTURE_BYTES = 64 * 1024 * 1024

#: Typed storage classes a state dict may name, and the dtype of their elements.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "BFloat16Storage": torch.bfloat16,
}

_ORDERED_DICT = ("collections", "OrderedDict")
_REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = ("torch._utils", "_rebuild_parameter")
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {_ORDERED_DICT, _REBUILD_TENSOR, _REBUILD_PARAMETER}
    | {("torch", storage) for storage in STORAGE_DTYPES}
)

_PLAIN_OPCODES = frozenset(
    {
        "PROTO",
        "FRAME",
        "EMPTY_DICT",
        "EMPTY_LIST",
        "EMPTY_TUPLE",
        "MARK",
        "TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "UNICODE",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG1",
        "NEWFALSE",
        "NEWTRUE",
        "NONE",
        "BINFLOAT",
        "BINPUT",
        "LONG_BINPUT",
        "MEMOIZE",
        "BINGET",
        "LONG_BINGET",
        "SETITEM",
        "SETITEMS",
        "APPEND",
        "APPENDS",
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "BUILD",
        "BINPERSID",
        "STOP",
    }
)


@dataclass(frozen=True)
class _Global:
    """An allow-listed global, kept as a name: it is interpreted, never imported."""

    module: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.module, self.name)


@dataclass(frozen=True)
class _Storage:
    """A storage read from the archive: a flat 1-D tensor of its elements."""

    data: torch.Tensor


class _Refused(Exception):
    """Internal: the reason a stream is refused (re-raised as CheckpointError)."""


def read_pth_state_dict(
    source: str | os.PathLike[str] | IO[bytes], *, name: str | None = None
) -> dict[str, torch.Tensor]:
    """Read a flat state dict (``str`` -> tensor) from a ``torch.save`` zip checkpoint.

    Nothing in the file is executed: the pickle stream describing the structure is parsed
    opcode by opcode and only the opcodes and globals a state dict needs are understood.

    Args:
        source: a path to the ``.pth`` file, or a binary file object holding its bytes.
        name: how to name the file in error messages (default: the path, or the file
            object's ``name``).

    Returns:
        A new ``dict`` mapping each key to a freshly allocated CPU tensor (copies, never
        views of the archive), with the dtype, shape and strides that were saved.
        Parameters come back as plain tensors.

    Raises:
        CheckpointError: the file is not a zip checkpoint, has no single ``*/data.pkl``,
            names a global or uses an opcode outside the allow-list, is malformed, or does
            not hold a flat ``str`` -> tensor mapping.
    """
    label = name if name is not None else _label_of(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{label}: not a PyTorch zip checkpoint ({_one_line(exc)})") from exc
    with archive:
        try:
            return _read_archive(archive)
        except CheckpointError:
            raise
        except _Refused as exc:
            raise CheckpointError(f"{label}: {exc}") from None
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            RuntimeError,
            NotImplementedError,
        ) as exc:
            raise CheckpointError(f"{label}: unreadable checkpoint ({_one_line(exc)})") from exc


def _label_of(source: str | os.PathLike[str] | IO[bytes]) -> str:
    if isinstance(source, str | os.PathLike):
        return str(Path(source))
    return str(getattr(source, "name", "<checkpoint>"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _read_archive(archive: zipfile.ZipFile) -> dict[str, torch.Tensor]:
    names = archive.namelist()
    structure = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(structure) != 1:
        found = "none" if not structure else ", ".join(structure)
        raise _Refused(f"expected exactly one '<prefix>/data.pkl' in the archive (found {found})")
    member = structure[0]
    prefix = member[: -len("data.pkl")]
    if archive.getinfo(member).file_size > MAX_STRUCTURE_BYTES:
        raise _Refused(f"{member} is implausibly large for a state dict")
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise _Refused(f"unknown byteorder {byteorder!r}")
    machine = _StateDictMachine(archive, prefix, byteorder)
    result = machine.run(archive.read(member))
    return _as_state_dict(result)


def _as_state_dict(result: Any) -> dict[str, torch.Tensor]:
    if not isinstance(result, dict):
        raise _Refused(f"holds a {type(result).__name__}, not a state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in result.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise _Refused(
                f"not a flat state dict: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[key] = value
    return state


class _StateDictMachine:
    """A tiny pickle stack machine that understands only what a state dict needs."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, byteorder: str) -> None:
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._storages: dict[tuple[str, torch.dtype], _Storage] = {}

    def run(self, stream: bytes) -> Any:
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}
        ops: Iterator[tuple[Any, Any, int | None]] = genops(io.BytesIO(stream))
        while True:
            try:
                opcode, arg, pos = next(ops)
            except StopIteration:
                raise _Refused("data.pkl ends without STOP") from None
            except (ValueError, EOFError, UnicodeDecodeError) as exc:
                raise _Refused(f"malformed data.pkl ({_one_line(exc)})") from None
            op = opcode.name
            if op not in _PLAIN_OPCODES:
                raise _Refused(f"refused pickle opcode {op} at byte {pos} of data.pkl")
            try:
                if op == "STOP":
                    if len(stack) != 1 or metastack:
                        raise _Refused("data.pkl stops with an unbalanced stack")
                    return stack.pop()
                stack = self._step(op, arg, stack, metastack, memo)
            except _Refused:
                raise
            except (IndexError, KeyError, TypeError, ValueError, OverflowError) as exc:
                raise _Refused(
                    f"malformed data.pkl at byte {pos} ({op}: {_one_line(exc)})"
                ) from None

    def _step(
        self,
        op: str,
        arg: Any,
        stack: list[Any],
        metastack: list[list[Any]],
        memo: dict[int, Any],
    ) -> list[Any]:
        """Apply one opcode; return the (possibly new) current stack."""
        if op == "PROTO":
            if not 2 <= int(arg) <= 5:
                raise _Refused(f"unsupported pickle protocol {arg}")
        elif op == "FRAME":
            pass
        elif op == "EMPTY_DICT":
            stack.append({})
        elif op == "EMPTY_LIST":
            stack.append([])
        elif op == "EMPTY_TUPLE":
            stack.append(())
        elif op == "MARK":
            metastack.append(stack)
            stack = []
        elif op == "TUPLE":
            items = tuple(stack)
            stack = _pop_mark(metastack)
            stack.append(items)
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}[op]
            if len(stack) < count:
                raise IndexError("stack underflow")
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif op in ("BINUNICODE", "SHORT_BINUNICODE", "UNICODE"):
            stack.append(str(arg))
        elif op in ("BININT", "BININT1", "BININT2", "LONG1"):
            stack.append(int(arg))
        elif op == "NEWFALSE":
            stack.append(False)
        elif op == "NEWTRUE":
            stack.append(True)
        elif op == "NONE":
            stack.append(None)
        elif op == "BINFLOAT":
            stack.append(float(arg))
        elif op in ("BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1]
        elif op == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif op in ("BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif op == "SETITEM":
            value = stack.pop()
            key = stack.pop()
            _dict_on(stack)[key] = value
        elif op == "SETITEMS":
            items = stack
            stack = _pop_mark(metastack)
            if len(items) % 2:
                raise ValueError("odd number of items for SETITEMS")
            target = _dict_on(stack)
            for index in range(0, len(items), 2):
                target[items[index]] = items[index + 1]
        elif op == "APPEND":
            value = stack.pop()
            _list_on(stack).append(value)
        elif op == "APPENDS":
            items = stack
            stack = _pop_mark(metastack)
            _list_on(stack).extend(items)
        elif op == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            stack.append(_allowed_global(module, name))
        elif op == "STACK_GLOBAL":
            name = stack.pop()
            module = stack.pop()
            if not isinstance(module, str) or not isinstance(name, str):
                raise TypeError("STACK_GLOBAL needs two strings")
            stack.append(_allowed_global(module, name))
        elif op == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            stack.append(self._reduce(func, args))
        elif op == "BUILD":
            state = stack.pop()
            target = stack[-1]
            # OrderedDict state (``_metadata`` of module state dicts) carries no tensors.
            if not isinstance(target, dict) or not (state is None or isinstance(state, dict)):
                raise _Refused(
                    f"refused BUILD of a {type(target).__name__} with a {type(state).__name__}"
                )
        elif op == "BINPERSID":
            stack.append(self._storage(stack.pop()))
        else:  # pragma: no cover - _PLAIN_OPCODES and this chain are kept in step
            raise _Refused(f"refused pickle opcode {op}")
        return stack

    def _reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise _Refused(f"refused REDUCE of {type(func).__name__}")
        if func.key == _ORDERED_DICT:
            if args:
                raise _Refused("refused OrderedDict with constructor arguments")
            return {}
        if func.key == _REBUILD_TENSOR:
            return _rebuild_tensor(args)
        if func.key == _REBUILD_PARAMETER:
            if len(args) != 3 or not isinstance(args[0], torch.Tensor):
                raise _Refused("malformed _rebuild_parameter arguments")
            _check_hooks(args[2])
            return args[0]
        raise _Refused(f"refused call of global '{func.module} {func.name}'")

    def _storage(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Refused(f"refused persistent id {_short_repr(pid)}")
        _, storage_type, key, _location, numel = pid
        if not (isinstance(storage_type, _Global) and storage_type.module == "torch"):
            raise _Refused(f"refused storage type {_short_repr(storage_type)}")
        dtype = STORAGE_DTYPES.get(storage_type.name)
        if dtype is None:
            raise _Refused(f"refused storage type torch.{storage_type.name}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise _Refused(f"malformed storage reference {_short_repr(pid)}")
        cached = self._storages.get((key, dtype))
        if cached is not None:
            return cached
        member = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(member)
        except KeyError:
            raise _Refused(f"storage {key!r} is missing from the archive") from None
        itemsize = dtype.itemsize
        if info.file_size != numel * itemsize:
            raise _Refused(
                f"storage {key!r} holds {info.file_size} bytes, expected {numel} x {itemsize}"
            )
        raw = self._archive.read(info)
        if len(raw) != numel * itemsize:
            raise _Refused(f"storage {key!r} holds {len(raw)} bytes, expected {numel} x {itemsize}")
        storage = _Storage(self._decode(raw, dtype, numel, itemsize))
        self._storages[(key, dtype)] = storage
        return storage

    def _decode(self, raw: bytes, dtype: torch.dtype, numel: int, itemsize: int) -> torch.Tensor:
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        buffer = bytearray(raw)  # a private, writable copy the tensor may own
        if itemsize > 1 and self._byteorder != sys.byteorder:
            swapped = torch.frombuffer(buffer, dtype=torch.uint8).view(numel, itemsize).flip(1)
            return swapped.contiguous().view(dtype).view(numel)
        return torch.frombuffer(buffer, dtype=dtype)


def _rebuild_tensor(args: tuple[Any, ...]) -> torch.Tensor:
    """Interpret ``_rebuild_tensor_v2(storage, offset, size, stride, grad, hooks[, meta])``."""
    if len(args) not in (6, 7):
        raise _Refused(f"_rebuild_tensor_v2 with {len(args)} arguments")
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    if not isinstance(storage, _Storage):
        raise _Refused("_rebuild_tensor_v2 without a storage")
    if not isinstance(requires_grad, bool):
        raise _Refused("malformed requires_grad in _rebuild_tensor_v2")
    _check_hooks(hooks)
    if len(args) == 7 and not _is_empty(args[6]):
        raise _Refused(f"refused tensor metadata {_short_repr(args[6])}")
    if not (_is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)):
        raise _Refused("malformed size/stride in _rebuild_tensor_v2")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _Refused("malformed storage offset in _rebuild_tensor_v2")
    if any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise _Refused("negative size or stride in _rebuild_tensor_v2")
    available = storage.data.numel()
    if all(n > 0 for n in size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= available:
            raise _Refused(
                f"tensor of size {tuple(size)} reaches element {last} of a "
                f"{available}-element storage"
            )
    elif offset > available:
        raise _Refused("storage offset beyond the end of its storage")
    return torch.as_strided(storage.data, tuple(size), tuple(stride), offset).clone()


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and not value)


def _check_hooks(hooks: Any) -> None:
    if not _is_empty(hooks):
        raise _Refused("refused tensor with backward hooks")


def _pop_mark(metastack: list[list[Any]]) -> list[Any]:
    if not metastack:
        raise IndexError("no MARK to pop")
    return metastack.pop()


def _dict_on(stack: list[Any]) -> dict[Any, Any]:
    target = stack[-1]
    if not isinstance(target, dict):
        raise TypeError(f"set item on a {type(target).__name__}")
    return target


def _list_on(stack: list[Any]) -> list[Any]:
    target = stack[-1]
    if not isinstance(target, list):
        raise TypeError(f"append to a {type(target).__name__}")
    return target


def _allowed_global(module: str, name: str) -> _Global:
    if (module, name) not in _ALLOWED_GLOBALS:
        raise _Refused(f"refused global '{module} {name}' in data.pkl (not a state-dict global)")
    return _Global(module, name)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
