"""Checkpoints: one safetensors file holding everything needed to continue a run exactly.

Layout of the tensor names::

    generator/<state_dict key>            discriminator/<state_dict key>
    optimizer/generator/<param>/<name>    optimizer/discriminator/<param>/<name>
    rng/torch_cpu   rng/latent   rng/cuda/<i>

Metadata (all strings): ``ganforge.format``, ``ganforge.step``, ``ganforge.recipe`` (the
resolved TOML), ``ganforge.versions``, ``ganforge.optimizers`` (param groups and
non-tensor state, as JSON), ``ganforge.trainer`` (the trainer's counters, as JSON) and
``ganforge.components`` (the JSON-able state of stateful components by recipe table; their
tensors are named ``state/<table>/<name>``).
No pickle anywhere.

Files are written to a hidden temporary file unique to its writer
(``.<name>.<pid>.<random>.tmp``, see :func:`ganforge.files.temporary_path`), flushed, fsynced
and renamed, so a reader never sees a partial checkpoint under a final name and two writers
never touch each other's temporary file.

Reading never trusts the file: the safetensors header is checked here (bounded length,
UTF-8 JSON object, known dtypes, shapes, and byte ranges that tile the data section
exactly) before the safetensors library sees it; only regular files are opened (a FIFO
or device named like a checkpoint would block or never end); the ganforge metadata is
decoded and validated in full (the trainer's counters through the project's cattrs
converter, the embedded recipe as TOML whose top-level values are tables, the RNG states)
before any tensor reaches a model; and :func:`check_module_layout` (against the header
alone), :func:`load_module_state` and :func:`validate_optimizer_state` compare tensors with
the model and optimizer key by key.  Every refusal is one
:class:`~ganforge.errors.CheckpointError` line naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..errors import CheckpointError, RecipeError
from ..files import write_bytes_atomic, writing
from ..structuring import key_path, structure_params, unstructure_params
from .rng import rng_state_problems

FORMAT_VERSION = "1"
_NAME = re.compile(r"^step-(\d{7,})\.safetensors$")
#: Refuse headers larger than this before parsing them (a hostile length field).
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Bytes per element of each safetensors dtype a checkpoint may hold (others are refused).
DTYPE_BYTES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_STEP = re.compile(r"[0-9]{1,18}")


#: Upper bounds of the trainer's counters: far above any real run, low enough that no
#: arithmetic on them overflows a 64-bit tensor or a ``range``.
MAX_BATCHES = 2**62
MAX_ROLLBACKS = 2**31
MAX_THREADS = 2**16
_PRECISION = re.compile(r"[a-z0-9_]{1,16}")


def _below(limit: int, shown: str, low: int = 0) -> Any:
    """attrs validator: an integer (or ``None``) in ``[low, limit)``; ``shown`` is how the
    error writes ``limit`` (``2**62`` reads better than its 19 digits)."""
    def check(_instance: Any, _attribute: Any, value: int | None) -> None:
        if value is not None and not low <= value < limit:
            raise ValueError(f"{_q(value, 40)} is not in [{low}, {shown})")
    return check


def _finite_non_negative(_instance: Any, _attribute: Any, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{value} is not a finite number >= 0")


def _precision_name(_instance: Any, _attribute: Any, value: str | None) -> None:
    # A short token: the resume check quotes it back to the user.
    if value is not None and not _PRECISION.fullmatch(value):
        raise ValueError(f"{_q(value, 30)} is not a precision name such as \"bf16\"")


@attrs.frozen
class BestMetric:
    """The best evaluation so far: metric label, its value and the step it was reached at.
    ``value`` may be non-finite in checkpoints of older versions (the trainer never lets a
    non-finite value win, and replaces one it finds)."""

    label: str
    value: float
    step: int = attrs.field(validator=_below(MAX_BATCHES, "2**62"))


@attrs.frozen
class TrainerMeta:
    """The trainer's own counters, stored as JSON under ``ganforge.trainer``.

    Read back through the project's cattrs converter (:func:`decode_trainer`): unknown keys,
    wrong types and values out of range are refused, every problem named with its path.
    """

    #: Batches taken from the loader; ``None`` in checkpoints written before it was saved.
    batches_seen: int | None = attrs.field(default=None, validator=_below(MAX_BATCHES, "2**62"))
    #: Training wall time of every session so far.
    elapsed_s: float = attrs.field(default=0.0, validator=_finite_non_negative)
    #: Divergence rollbacks so far (counts against ``run.max_rollbacks``).
    rollbacks: int = attrs.field(default=0, validator=_below(MAX_ROLLBACKS, "2**31"))
    best: BestMetric | None = None
    #: ``torch.get_num_threads()`` of the process that wrote the checkpoint.
    threads: int | None = attrs.field(default=None, validator=_below(MAX_THREADS, "2**16", 1))
    #: The resolved precision (``"fp32"``, ``"bf16"``, ...) of the run that wrote it.
    precision: str | None = attrs.field(default=None, validator=_precision_name)


@attrs.frozen
class TensorInfo:
    """One tensor as the safetensors header describes it (no data read)."""

    dtype: str
    shape: tuple[int, ...]


@attrs.frozen
class CheckpointHeader:
    """A checkpoint's header, checked and decoded, without its tensors' data."""

    step: int
    recipe_toml: str
    #: ``recipe_toml`` parsed; every top-level value is a table.
    recipe_table: dict[str, Any]
    versions: dict[str, str]
    optimizers: dict[str, Any]
    trainer: TrainerMeta
    #: JSON-able state of stateful components, by recipe table name.
    components: dict[str, dict[str, Any]]
    #: Every tensor's dtype and shape by name.
    entries: dict[str, TensorInfo]
    #: The raw ``__metadata__`` strings.
    metadata: dict[str, str]

    def section(self, prefix: str) -> dict[str, TensorInfo]:
        """Entries under ``prefix/`` with the prefix removed."""
        return _section(self.entries, prefix)


@attrs.frozen
class CheckpointContents:
    """A checkpoint read back: its tensors and decoded metadata."""

    step: int
    recipe_toml: str
    versions: dict[str, str]
    optimizers: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    #: The trainer's own counters (batches consumed, best metric, ...).
    trainer: TrainerMeta = attrs.field(factory=TrainerMeta)
    #: ``recipe_toml`` parsed; every top-level value is a table.
    recipe_table: dict[str, Any] = attrs.field(factory=dict)
    #: JSON-able state of stateful components, by recipe table name.
    components: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix/`` with the prefix removed (e.g. a module's state dict)."""
        return _section(self.tensors, prefix)


def _section(items: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in items.items() if k.startswith(prefix + "/")}


def checkpoint_name(step: int) -> str:
    """``step-0001000.safetensors``: sorts by step as text."""
    return f"step-{step:07d}.safetensors"


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file name encodes, or ``None`` for other files."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


# -- optimizer state ----------------------------------------------------------------------

def optimizer_to_flat(prefix: str, optimizer: torch.optim.Optimizer
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
                        ) -> dict[str, Any]:
    """Rebuild a state dict for ``torch.optim.Optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition("/")
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# -- writing ------------------------------------------------------------------------------

def write_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], *, step: int,
                     recipe_toml: str, versions: Mapping[str, str],
                     optimizers: Mapping[str, Any],
                     trainer: TrainerMeta | Mapping[str, Any] | None = None,
                     components: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write one checkpoint atomically: temporary file, fsync, rename, fsync the folder.

    ``trainer`` is a :class:`TrainerMeta` or the dict of its fields; it is validated as a
    reader will validate it, so a checkpoint ganforge writes always reads back. The
    temporary file is ``.<name>.<pid>.<random hex>.tmp`` beside ``path`` (matched by the
    glob ``.*.safetensors.*.tmp``), unique to this writer."""
    meta = _trainer_meta(trainer)
    metadata = {
        "ganforge.format": FORMAT_VERSION,
        "ganforge.step": str(step),
        "ganforge.recipe": recipe_toml,
        "ganforge.versions": json.dumps(dict(versions), sort_keys=True),
        "ganforge.optimizers": json.dumps(dict(optimizers), sort_keys=True),
        "ganforge.trainer": json.dumps(unstructure_params(meta), sort_keys=True),
        "ganforge.components": json.dumps({k: dict(v) for k, v in (components or {}).items()},
                                          sort_keys=True),
    }
    host = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = save_bytes(host, metadata=metadata)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, data)


def _trainer_meta(trainer: TrainerMeta | Mapping[str, Any] | None) -> TrainerMeta:
    """``trainer`` as a :class:`TrainerMeta`; a dict that no reader would accept is a bug of
    the writer, raised as ``ValueError`` before anything is written."""
    if trainer is None:
        return TrainerMeta()
    if isinstance(trainer, TrainerMeta):
        return trainer
    try:
        return decode_trainer(trainer)
    except RecipeError as exc:
        raise ValueError(f"trainer metadata not written: {_problems(exc)}") from None


def rotate(folder: Path, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (never one in ``protect``)."""
    found = sorted((p for p in folder.glob("step-*.safetensors") if checkpoint_step(p) is not None),
                   key=lambda p: checkpoint_step(p) or 0)
    doomed = [p for p in found[:-keep_last] if p not in protect] if keep_last > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# -- reading ------------------------------------------------------------------------------

# Every character ``str.splitlines`` breaks on, shown escaped so an error stays one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def _refuse(path: Path | str, reason: str) -> CheckpointError:
    """The error for ``path``, as one line whatever the file put in names or values."""
    return CheckpointError(_one_line(f"{path}: {reason}"))


def _q(value: Any, limit: int = 60) -> str:
    """A name or value from the file, quoted and escaped, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (JSON parsers disagree on which wins)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _kind(value: Any) -> str:
    """What a decoded JSON value is, in words."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _looks_like(head: bytes) -> str:
    """A hint for a file that is plainly not safetensors."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "; it is a pickle file, and ganforge never unpickles checkpoints"
    if head.startswith(b"PK\x03\x04"):
        return "; it is a zip archive (torch.save?), and ganforge reads only safetensors"
    return ""


_Header = tuple[dict[str, str], dict[str, TensorInfo]]


def _read_header(f: IO[bytes], size: int, path: Path) -> _Header:
    """Read and check the safetensors header at the start of binary file ``f`` of ``size``
    bytes, reading at most :data:`MAX_HEADER_BYTES`; returns the ``__metadata__`` and the
    tensor entries."""
    head = f.read(8)
    if len(head) < 8:
        raise _refuse(path, f"not a safetensors checkpoint ({size} bytes, too short for the "
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
        raise _refuse(path, f"not a safetensors checkpoint: {problem}{_looks_like(head)}")
    raw = f.read(length)
    if len(raw) != length:
        raise _refuse(path, "file shrank while its header was being read")
    return _check_header_bytes(raw, size - 8 - length, path)


def _check_header_bytes(raw: bytes, data_size: int, path: Path) -> _Header:
    """Check a header against a data section of ``data_size`` bytes; returns the metadata
    and the tensor entries."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(path, f"safetensors header is not valid UTF-8 (byte {exc.start} of "
                            "the header)") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise _refuse(path, f"safetensors header has the key {_q(exc.args[0])} twice") from None
    except (ValueError, RecursionError) as exc:
        raise _refuse(path, f"safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _refuse(path, f"safetensors header is not a JSON object "
                            f"({_kind(header)})")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _refuse(path, f"__metadata__ is not a JSON object ({_kind(metadata)})")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _refuse(path, f"__metadata__ must map strings to strings; {_q(key)} is "
                                f"{_q(value, 30)} ({_kind(value)})")
    ranges: list[tuple[int, int, str]] = []
    entries: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        ranges.append((*_check_entry(name, entry, data_size, path), name))
        entries[name] = TensorInfo(entry["dtype"], tuple(entry["shape"]))
    ranges.sort()
    position, previous = 0, None
    for begin, end, name in ranges:
        if begin < position:
            raise _refuse(path, f"tensors {_q(previous)} and {_q(name)} overlap (bytes "
                                f"{begin}..{min(end, position)} of the data section)")
        if begin > position:
            after = f"after {_q(previous)}" if previous is not None else "at the start"
            raise _refuse(path, f"gap of {begin - position} unused bytes {after}, before "
                                f"{_q(name)} (data_offsets must tile the data section)")
        position, previous = end, name
    if position != data_size:
        raise _refuse(path, f"{data_size - position} bytes of trailing data after the last "
                            f"tensor (data section {data_size} bytes, tensors end at "
                            f"{position})")
    return metadata, entries


def _check_entry(name: str, entry: Any, data_size: int, path: Path) -> tuple[int, int]:
    """Check one tensor entry of a header; returns its ``(begin, end)``."""
    where = f"tensor {_q(name)}"
    if not isinstance(entry, dict):
        raise _refuse(path, f"{where}: entry is not a JSON object")
    if set(entry) != _TENSOR_FIELDS:
        raise _refuse(path, f"{where}: entry has fields {_q(sorted(entry))}, expected "
                            f"{_q(sorted(_TENSOR_FIELDS))}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise _refuse(path, f"{where}: unknown dtype {_q(dtype, 30)}")
    if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
        raise _refuse(path, f"{where}: shape {_q(shape, 40)} is not a list of non-negative "
                            "integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(n) and n >= 0 for n in offsets)):
        raise _refuse(path, f"{where}: data_offsets {_q(offsets, 40)} are not two "
                            "non-negative integers [begin, end]")
    begin, end = offsets
    if begin > end:
        raise _refuse(path, f"{where}: data_offsets [{begin}, {end}] begin after they end")
    if end > data_size:
        raise _refuse(path, f"{where}: data_offsets [{begin}, {end}] run past the end of the "
                            f"file (data section {data_size} bytes)")
    needed = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != needed:
        raise _refuse(path, f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes, "
                            f"shape {shape} of {dtype} needs {needed}")
    return begin, end


def _check_format(path: Path, metadata: Mapping[str, str]) -> None:
    if metadata.get("ganforge.format") != FORMAT_VERSION:
        raise _refuse(path, f"not a ganforge checkpoint "
                            f"(format {_q(metadata.get('ganforge.format'), 30)})")


def _open_regular(path: Path) -> tuple[IO[bytes], int]:
    """Open ``path`` for reading and return it with its size, refusing anything but a
    regular file: a FIFO would block the reader forever, a device never ends. The open
    itself does not block (``O_NONBLOCK``), and the kind is checked on the opened file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _refuse(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, f"not a checkpoint: {_file_kind(info.st_mode)}, not a regular "
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


def read_header(path: str | Path) -> CheckpointHeader:
    """The checked and decoded header of a checkpoint, without its tensors' data.

    Everything :func:`read_checkpoint` checks before it reads the data section is checked
    here: the safetensors header in full, the format, and every piece of ganforge metadata
    (step, versions, optimizers, the trainer's counters, the embedded recipe)."""
    path = Path(path)
    try:
        f, size = _open_regular(path)
        with f:
            metadata, entries = _read_header(f, size, path)
    except OSError as exc:
        raise _refuse(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    try:  # defence in depth: the library must agree the file is sound
        with safe_open(str(path), framework="pt") as st:
            st.metadata()
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _refuse(path, f"not a valid safetensors checkpoint: {exc}") from None
    return _decode_header(path, metadata, entries)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint, without reading its tensors (the header and the
    ganforge metadata are checked in full, so a truncated or hostile file is refused here
    already)."""
    return read_header(path).metadata


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and decode a whole checkpoint; any problem is a :class:`CheckpointError`.

    The header and all metadata are checked before the tensors are read, the bytes handed
    to the safetensors library are the very bytes that were checked, and the RNG states
    are checked before anyone can restore them."""
    path = Path(path)
    try:
        f, size = _open_regular(path)
        with f:
            header = _decode_header(path, *_read_header(f, size, path))
            f.seek(0)
            data = f.read(size + 1)
    except OSError as exc:
        raise _refuse(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    if len(data) != size:
        raise _refuse(path, f"file changed while being read ({size} bytes, then {len(data)})")
    # Check again the bytes actually loaded, in case the file changed after the first look.
    header_length = struct.unpack("<Q", data[:8])[0]
    if 8 + header_length > size:
        raise _refuse(path, "file changed while being read (header length)")
    metadata, entries = _check_header_bytes(data[8:8 + header_length],
                                            size - 8 - header_length, path)
    if (metadata, entries) != (header.metadata, header.entries):
        raise _refuse(path, "file changed while being read (header)")
    try:
        tensors = load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _refuse(path, f"cannot read tensors: {exc}") from None
    problems = rng_state_problems(tensors)
    if problems:
        raise _refuse(path, f"broken RNG state: {'; '.join(problems)}")
    return CheckpointContents(
        step=header.step,
        recipe_toml=header.recipe_toml,
        versions=header.versions,
        optimizers=header.optimizers,
        tensors=tensors,
        trainer=header.trainer,
        recipe_table=header.recipe_table,
        components=header.components,
    )


def _decode_header(path: Path, metadata: dict[str, str],
                   entries: dict[str, TensorInfo]) -> CheckpointHeader:
    """Check the format and decode every piece of ganforge metadata."""
    _check_format(path, metadata)
    recipe_toml = _required(path, metadata, "ganforge.recipe")
    return CheckpointHeader(
        step=_decode_step(path, metadata),
        recipe_toml=recipe_toml,
        recipe_table=_decode_recipe(path, recipe_toml),
        versions=_decode_versions(path, metadata),
        optimizers=_decode_optimizers(path, metadata),
        trainer=_decode_trainer(path, metadata),
        components=_decode_components(path, metadata),
        entries=entries,
        metadata=metadata,
    )


def _required(path: Path, metadata: Mapping[str, str], key: str) -> str:
    if key not in metadata:
        raise _refuse(path, f"broken ganforge metadata: no {key}")
    return metadata[key]


def _decode_step(path: Path, metadata: Mapping[str, str]) -> int:
    text = _required(path, metadata, "ganforge.step")
    if not _STEP.fullmatch(text):
        raise _refuse(path, f"broken ganforge metadata: ganforge.step {_q(text, 30)} is not a "
                            "non-negative integer")
    return int(text)


def _decode_recipe(path: Path, text: str) -> dict[str, Any]:
    """The embedded recipe parsed; it must be TOML whose top-level values are all tables
    (``[run]``, ``[generator]``, ...), as every recipe ganforge writes is."""
    where = "broken ganforge metadata: ganforge.recipe"
    try:
        table = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise _refuse(path, f"{where} is not valid TOML: {first[:200]}") from None
    for key, value in table.items():
        if not isinstance(value, dict):
            raise _refuse(path, f"{where}: {key_path('$', key)} is {_q(value, 30)} "
                                f"({_kind(value)}), not a table")
    return table


def _decode_json(path: Path, metadata: Mapping[str, str], key: str) -> dict[str, Any]:
    """Metadata ``key`` decoded as a JSON object (``{}`` when absent)."""
    try:
        value = json.loads(metadata.get(key, "{}"), object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise _refuse(path, f"broken ganforge metadata: {key} has the key "
                            f"{_q(exc.args[0])} twice") from None
    except (ValueError, RecursionError) as exc:
        raise _refuse(path, f"broken ganforge metadata: {key} is not valid JSON: "
                            f"{exc}") from None
    if not isinstance(value, dict):
        raise _refuse(path, f"broken ganforge metadata: {key} is not a JSON object "
                            f"({_kind(value)})")
    return value


def _decode_versions(path: Path, metadata: Mapping[str, str]) -> dict[str, str]:
    versions = _decode_json(path, metadata, "ganforge.versions")
    for name, version in versions.items():
        if not isinstance(version, str):
            raise _refuse(path, f"broken ganforge metadata: ganforge.versions[{_q(name)}] is "
                                f"{_q(version, 30)}, not a string")
    return versions


def _decode_optimizers(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    optimizers = _decode_json(path, metadata, "ganforge.optimizers")
    for name, rest in optimizers.items():
        where = f"broken ganforge metadata: ganforge.optimizers[{_q(name)}]"
        if not isinstance(rest, dict):
            raise _refuse(path, f"{where} is not a JSON object")
        groups = rest.get("param_groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise _refuse(path, f"{where}.param_groups is not a list of JSON objects")
        for i, group in enumerate(groups):
            params = group.get("params")
            if not isinstance(params, list) or not all(_is_int(p) and p >= 0 for p in params):
                raise _refuse(path, f"{where}.param_groups[{i}].params is not a list of "
                                    "non-negative integers")
        scalars = rest.get("scalars", {})
        if not isinstance(scalars, dict) or not all(
                _STEP.fullmatch(k) and isinstance(v, dict) for k, v in scalars.items()):
            raise _refuse(path, f"{where}.scalars is not a JSON object mapping parameter "
                                "indices to JSON objects")
    return optimizers


def _decode_components(path: Path, metadata: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    components = _decode_json(path, metadata, "ganforge.components")
    for table, values in components.items():
        if not isinstance(values, dict):
            raise _refuse(path, f"broken ganforge metadata: ganforge.components[{_q(table)}] "
                                "is not a JSON object")
    return components


def _decode_trainer(path: Path, metadata: Mapping[str, str]) -> TrainerMeta:
    try:
        return decode_trainer(_decode_json(path, metadata, "ganforge.trainer"))
    except RecipeError as exc:
        raise _refuse(path, f"broken ganforge metadata: {_problems(exc)}") from None


def decode_trainer(data: Mapping[str, Any]) -> TrainerMeta:
    """The trainer's counters from their JSON form, through the project's strict cattrs
    converter (:func:`~ganforge.structuring.structure_params`): unknown keys, wrong types and
    values out of range are refused, every problem at once with its path
    (``ganforge.trainer.best.step``), as a :class:`~ganforge.errors.RecipeError`."""
    problems: list[tuple[str, str]] = []
    rest = {k: v for k, v in data.items() if k != "best"}
    meta = TrainerMeta()
    try:
        meta = structure_params(TrainerMeta, rest, "ganforge.trainer")
    except RecipeError as exc:
        problems.extend(exc.problems)
    best = None
    if data.get("best") is not None:  # structured on its own so that its problems get paths
        try:
            best = structure_params(BestMetric, data["best"], "ganforge.trainer.best")
        except RecipeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RecipeError(problems)
    return attrs.evolve(meta, best=best)


#: Problems shown in one refusal, and characters per problem: a hostile file must not
#: turn one error line into megabytes.
_SHOWN_PROBLEMS = 5
_PROBLEM_CHARS = 200


def _problems(exc: RecipeError) -> str:
    """A :class:`RecipeError`'s problems as one bounded line."""
    shown = [f"{where}: {message}"[:_PROBLEM_CHARS]
             for where, message in exc.problems[:_SHOWN_PROBLEMS]]
    more = len(exc.problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in ``folder`` whose header and metadata read back. Partial
    files never have a final name; a damaged file, a file that is not a ganforge
    checkpoint (a foreign safetensors file) and anything but a regular file (a FIFO named
    like a checkpoint) are skipped."""
    if not folder.is_dir():
        return None
    candidates = sorted((p for p in folder.glob("step-*.safetensors")
                         if checkpoint_step(p) is not None),
                        key=lambda p: checkpoint_step(p) or 0, reverse=True)
    for path in candidates:
        try:
            read_header(path)
        except CheckpointError:
            continue
        return path
    return None


def _names(keys: list[str]) -> str:
    return ", ".join(keys)


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor],
                      what: str, source: Path | str) -> None:
    """Load ``state`` into ``module`` after checking keys, shapes, dtypes and finiteness,
    naming every mismatch key by key; nothing is loaded if anything is wrong."""
    problems = _layout_problems(
        module, {k: (v.shape, v.dtype) for k, v in state.items() if isinstance(v, torch.Tensor)},
        [k for k, v in state.items() if not isinstance(v, torch.Tensor)])
    for key in sorted(set(module.state_dict()) & set(state)):
        got = state[key]
        if (isinstance(got, torch.Tensor) and (got.is_floating_point() or got.is_complex())
                and not torch.isfinite(got).all()):
            problems.append(f"{key}: non-finite values")
    if problems:
        raise _refuse(source, f"{what} does not match: {'; '.join(problems)}")
    module.load_state_dict(state)


def check_module_layout(module: torch.nn.Module, entries: Mapping[str, TensorInfo],
                        what: str, source: Path | str) -> None:
    """Compare ``module``'s state dict with the tensor ``entries`` of a checkpoint header
    (keys, shapes, dtypes), naming every mismatch as :func:`load_module_state` does.

    ``module`` may live on the ``meta`` device: built there from a checkpoint's embedded
    recipe it costs no memory, so a recipe that asks for a huge network is refused
    before that network is ever allocated."""
    problems = _layout_problems(
        module, {k: (torch.Size(v.shape), _TORCH_DTYPES.get(v.dtype, v.dtype))
                 for k, v in entries.items()})
    if problems:
        raise _refuse(source, f"{what} does not match: {'; '.join(problems)}")


#: safetensors dtype names as torch dtypes (names this torch lacks compare as strings).
_TORCH_DTYPES: dict[str, Any] = {
    name: getattr(torch, attr, name) for name, attr in {
        "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
        "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16",
        "BF16": "bfloat16", "F32": "float32", "F64": "float64", "C64": "complex64",
        "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
        "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    }.items()}


def _layout_problems(module: torch.nn.Module, got: Mapping[str, tuple[torch.Size, Any]],
                     not_tensors: Collection[str] = ()) -> list[str]:
    """Missing and unexpected keys, and shape and dtype mismatches, of ``got`` (key ->
    ``(shape, dtype)``) against ``module``'s state dict."""
    expected = module.state_dict()
    keys = set(got) | set(not_tensors)
    problems: list[str] = []
    missing = sorted(set(expected) - keys)
    extra = sorted(keys - set(expected))
    if missing:
        problems.append(f"missing {_names(missing)}")
    if extra:
        problems.append(f"unexpected {_names(extra)}")
    for key in sorted(set(expected) & keys):
        if key not in got:
            problems.append(f"{key}: not a tensor in checkpoint")
            continue
        (shape, dtype), want = got[key], expected[key]
        if want.shape != shape:
            problems.append(f"{key}: shape {list(shape)} in checkpoint, "
                            f"{list(want.shape)} in model")
        if want.dtype != dtype:
            problems.append(f"{key}: dtype {dtype} in checkpoint, {want.dtype} in model")
    return problems


def validate_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: Mapping[str, Any],
                             what: str, source: Path | str) -> None:
    """Check an optimizer state dict (as :func:`optimizer_from_flat` builds it) against the
    live ``optimizer`` before ``optimizer.load_state_dict(state_dict)``; touches nothing.

    Refused, each problem named key by key in one :class:`CheckpointError` line: a different
    number of param groups or of params in a group, parameter indices that are not unique
    integers, state for a parameter no group lists, a tensor entry (other than a scalar
    ``step``) whose shape is not its parameter's, whose dtype is not floating, or that holds
    NaN or infinity, a ``step`` that is not one finite non-negative number, and non-finite
    numeric hyper-parameters. ``what`` names the optimizer (``"generator"``); keys are shown
    as ``optimizer/<what>/<param index>/<name>``, e.g.
    ``optimizer/generator/3/exp_avg: shape [4] in checkpoint, [8, 3] for the parameter``.
    """
    prefix = what if what.startswith("optimizer/") else f"optimizer/{what}"
    fail = f"optimizer {what.removeprefix('optimizer/')} state does not match"
    groups = state_dict.get("param_groups") if isinstance(state_dict, Mapping) else None
    state = state_dict.get("state", {}) if isinstance(state_dict, Mapping) else None
    if not isinstance(groups, list | tuple) or not isinstance(state, Mapping):
        raise _refuse(source, f"{fail}: {prefix}: not a state dict with param_groups and state")
    live_groups = optimizer.param_groups
    if len(groups) != len(live_groups):
        raise _refuse(source, f"{fail}: {prefix}: {len(groups)} param groups in checkpoint, "
                              f"{len(live_groups)} in the optimizer")
    problems: list[str] = []
    params: dict[int, torch.Tensor] = {}
    for g, (saved, live) in enumerate(zip(groups, live_groups, strict=True)):
        where = f"{prefix}/param_groups/{g}"
        ids = saved.get("params") if isinstance(saved, Mapping) else None
        if not isinstance(ids, list | tuple):
            problems.append(f"{where}: no params list")
            continue
        if len(ids) != len(live["params"]):
            problems.append(f"{where}: {len(ids)} params in checkpoint, "
                            f"{len(live['params'])} in the optimizer")
            continue
        for index, param in zip(ids, live["params"], strict=True):
            if not _is_int(index) or index in params:
                problems.append(f"{where}: parameter index {_q(index, 20)} is not a unique "
                                "integer")
                continue
            params[index] = param
        for key, value in saved.items():
            numbers = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                problems.append(f"{where}/{key}: non-finite value {_q(value, 30)}")
    for index, entry in state.items():
        param = params.get(index) if _is_int(index) else None
        if param is None:
            problems.append(f"{prefix}/{index}: state for a parameter no param group lists")
            continue
        if not isinstance(entry, Mapping):
            problems.append(f"{prefix}/{index}: state is not a mapping")
            continue
        for name, value in entry.items():
            key = f"{prefix}/{index}/{name}"
            if name == "step":
                problems.extend(_step_problems(key, value))
            elif isinstance(value, torch.Tensor):
                if value.shape != param.shape:
                    problems.append(f"{key}: shape {list(value.shape)} in checkpoint, "
                                    f"{list(param.shape)} for the parameter")
                if not (value.is_floating_point() or (value.is_complex() and param.is_complex())):
                    problems.append(f"{key}: dtype {value.dtype} in checkpoint, a floating "
                                    f"dtype expected (the parameter is {param.dtype})")
                elif not torch.isfinite(value).all():
                    problems.append(f"{key}: non-finite values")
    if problems:
        raise _refuse(source, f"{fail}: {'; '.join(problems)}")


def _step_problems(key: str, value: Any) -> list[str]:
    """Why an optimizer ``step`` entry is not one finite non-negative number (or nothing)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dim() > 1:
            return [f"{key}: shape {list(value.shape)} in checkpoint, a scalar expected"]
        if value.is_complex() or value.dtype == torch.bool:
            return [f"{key}: dtype {value.dtype} in checkpoint, a real number expected"]
        number = value.item()
    elif _is_int(value) or isinstance(value, float):
        number = value
    else:
        return [f"{key}: {_q(value, 30)} is not a number"]
    if not (math.isfinite(number) and number >= 0):
        return [f"{key}: {number} is not a finite non-negative step"]
    return []
