"""The checkpoint file format: one safetensors file holding everything needed to continue a
run exactly, written atomically, found, rotated, and read back without trusting it.

This module's one job is the file: its names (:func:`checkpoint_name`, :func:`rotate`,
:func:`latest_checkpoint`), writing (:func:`write_checkpoint`), reading
(:func:`read_header`, :func:`read_metadata`, :func:`read_checkpoint`) and the metadata as
attrs classes (:class:`TrainerMeta`, :class:`CheckpointHeader`, ...). Comparing what a file
holds with a live model or optimizer is :mod:`ganforge.training.checkpoint_checks`'s job.

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

Reading never trusts the file. Only regular files are opened (a FIFO or device named like
a checkpoint would block or never end). ganforge makes the checks the safetensors library
does not make: the header's length field is bounded before anything is parsed (a pickle or
zip file gets a hint saying what it is), the header is UTF-8 JSON with no key given twice,
its ``__metadata__`` maps strings to strings, and each tensor entry has exactly the fields
``dtype``, ``shape`` and ``data_offsets`` and a dtype in :data:`DTYPES`. The rest of the
header (field types, sizes against shapes and dtypes, offsets that tile the data section
exactly, no data after the last tensor) is checked by safetensors itself, when
:func:`read_header` opens the file and when :func:`read_checkpoint` loads the very bytes
it checked, before any tensor is made. The ganforge metadata is decoded and validated in
full (the trainer's counters through the project's cattrs converter, the embedded recipe
as TOML whose top-level values are tables) before any tensor is read, and the RNG states
before anyone can restore them. Every refusal is one
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
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..errors import CheckpointError, RecipeError
from ..files import write_bytes_atomic, writing
from ..recipe.model import MAX_STEPS
from ..structuring import key_path, structure_params, unstructure_params
from . import checkpoint_integrity as integrity
from .rng import rng_state_problems

FORMAT_VERSION = "1"
_NAME = re.compile(r"^step-(\d{7,})\.safetensors$")
#: Refuse headers larger than this before parsing them (a hostile length field).
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: The safetensors dtypes a checkpoint may hold: those ``safetensors.torch`` loads (the
#: library's header check also accepts F4, F6_* and F8_E8M0, which its loader then fails
#: on with a ``KeyError``).
DTYPES = frozenset({
    "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16",
    "F16", "BF16", "I32", "U32", "F32", "I64", "U64", "F64", "C64",
})
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
            raise ValueError(f"{quoted(value, 40)} is not in [{low}, {shown})")
    return check


def _finite_non_negative(_instance: Any, _attribute: Any, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{value} is not a finite number >= 0")


def _precision_name(_instance: Any, _attribute: Any, value: str | None) -> None:
    # A short token: the resume check quotes it back to the user.
    if value is not None and not _PRECISION.fullmatch(value):
        raise ValueError(f"{quoted(value, 30)} is not a precision name such as \"bf16\"")


def _positive_finite(_instance: Any, attribute: Any, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"'{attribute.name}' must be a finite number > 0: {quoted(value, 30)}")


#: Tensor prefix of the EMA of G (``[ema]``) in a checkpoint.
EMA_PREFIX = "generator_ema"


@attrs.frozen
class GradScalerState:
    """An fp16 loss scaler's state (:class:`torch.amp.GradScaler`), and the updates it has
    skipped so far because their gradients overflowed."""

    scale: float = attrs.field(validator=_positive_finite)
    growth_tracker: int = attrs.field(validator=_below(MAX_BATCHES, "2**62"))
    skipped: int = attrs.field(default=0, validator=_below(MAX_BATCHES, "2**62"))


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
    #: The fp16 loss scalers by network (``run.precision = "fp16"``), else None.
    grad_scalers: dict[str, GradScalerState] | None = None


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
    metadata[integrity.INTEGRITY_KEY] = integrity.integrity_metadata(host)
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


#: The suffix of the scores ``ganforge eval`` records beside a checkpoint file.
EVALUATIONS_SUFFIX = ".evaluations.jsonl"


def rotate(folder: Path, keep_last: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (never one in ``protect``), each
    with the scores recorded beside it (:data:`EVALUATIONS_SUFFIX`)."""
    found = sorted((p for p in folder.glob("step-*.safetensors") if checkpoint_step(p) is not None),
                   key=lambda p: checkpoint_step(p) or 0)
    doomed = [p for p in found[:-keep_last] if p not in protect] if keep_last > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
        p.with_name(p.name + EVALUATIONS_SUFFIX).unlink(missing_ok=True)
    return doomed


# -- reading ------------------------------------------------------------------------------

# Every character ``str.splitlines`` breaks on, shown escaped so an error stays one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def refusal(path: Path | str, reason: str) -> CheckpointError:
    """The error for ``path``, as one line whatever the file put in names or values (also
    the error of :mod:`~ganforge.training.checkpoint_checks`)."""
    return CheckpointError(_one_line(f"{path}: {reason}"))


def quoted(value: Any, limit: int = 60) -> str:
    """A name or value from the file, quoted and escaped, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class DuplicateKey(ValueError):
    """A JSON object gave this key twice (:func:`no_duplicate_keys`)."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (JSON parsers disagree on which wins)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def _kind(value: Any) -> str:
    """What a decoded JSON value is, in words."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (JSON ``true`` decodes to one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _looks_like(head: bytes) -> str:
    """A hint for a file that is plainly not safetensors."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "; it is a pickle file, and ganforge never unpickles checkpoints"
    if head.startswith(b"PK\x03\x04"):
        return "; it is a zip archive (torch.save?), and ganforge reads only safetensors"
    return ""


#: Characters of a safetensors error shown in a refusal: its messages quote names and values
#: from the file, and a hostile file must not turn one error line into megabytes.
_LIBRARY_CHARS = 300


def library_problem(exc: BaseException) -> str:
    """A safetensors error as ``not a valid safetensors checkpoint: <its words>``, cut to
    :data:`_LIBRARY_CHARS` and with every unprintable character (a terminal escape in a
    tensor name) escaped."""
    text = str(exc)
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:_LIBRARY_CHARS])
    more = "..." if len(text) > _LIBRARY_CHARS else ""
    return f"not a valid safetensors checkpoint: {shown}{more}"


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
        raise refusal(path, f"safetensors header is not a JSON object "
                            f"({_kind(header)})")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise refusal(path, f"__metadata__ is not a JSON object ({_kind(metadata)})")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise refusal(path, f"__metadata__ must map strings to strings; {quoted(key)} is "
                                f"{quoted(value, 30)} ({_kind(value)})")
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


def _check_format(path: Path, metadata: Mapping[str, str]) -> None:
    if metadata.get("ganforge.format") != FORMAT_VERSION:
        raise refusal(path, f"not a ganforge checkpoint "
                            f"(format {quoted(metadata.get('ganforge.format'), 30)})")


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


def read_header(path: str | Path) -> CheckpointHeader:
    """The checked and decoded header of a checkpoint, without its tensors' data.

    Everything :func:`read_checkpoint` checks before it reads the data section is checked
    here: the safetensors header in full (by ganforge, then by the safetensors library),
    the format, and every piece of ganforge metadata (step, versions, optimizers, the
    trainer's counters, the embedded recipe)."""
    path = Path(path)
    try:
        f, size = open_regular(path)
        with f:
            metadata, tensors = parse_safetensors_header(read_header_bytes(f, size, path), path)
    except OSError as exc:
        raise refusal(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    entries = _library_entries(path, metadata, tensors)
    return CheckpointHeader(**_decode_metadata(path, metadata), entries=entries,
                            metadata=metadata)


def _library_entries(path: Path, metadata: Mapping[str, str],
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


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint, without reading its tensors (the header and the
    ganforge metadata are checked in full, so a truncated or hostile file is refused here
    already)."""
    return read_header(path).metadata


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and decode a whole checkpoint; any problem is a :class:`CheckpointError`.

    The header and all metadata are checked before the tensors are read, the bytes handed
    to the safetensors library are the very bytes that were checked (it checks the rest
    of the header itself before it makes any tensor), and the RNG states are checked
    before anyone can restore them."""
    path = Path(path)
    try:
        f, size = open_regular(path)
        with f:
            raw = read_header_bytes(f, size, path)
            metadata = parse_safetensors_header(raw, path)[0]
            decoded = _decode_metadata(path, metadata)
            f.seek(0)
            data = f.read(size + 1)
    except OSError as exc:
        raise refusal(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
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
    damage = integrity.mismatch(metadata, tensors)
    if damage:
        raise refusal(path, damage)
    problems = rng_state_problems(tensors)
    if problems:
        raise refusal(path, f"broken RNG state: {'; '.join(problems)}")
    return CheckpointContents(**decoded, tensors=tensors)


def _decode_metadata(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """Check the format and decode every piece of ganforge metadata; returns the fields
    :class:`CheckpointHeader` and :class:`CheckpointContents` share."""
    _check_format(path, metadata)
    if problem := integrity.record_problem(metadata):
        raise refusal(path, problem)
    recipe_toml = _required(path, metadata, "ganforge.recipe")
    return {
        "step": _decode_step(path, metadata),
        "recipe_toml": recipe_toml,
        "recipe_table": _decode_recipe(path, recipe_toml),
        "versions": _decode_versions(path, metadata),
        "optimizers": _decode_optimizers(path, metadata),
        "trainer": _decode_trainer(path, metadata),
        "components": _decode_components(path, metadata),
    }


def _required(path: Path, metadata: Mapping[str, str], key: str) -> str:
    if key not in metadata:
        raise refusal(path, f"broken ganforge metadata: no {key}")
    return metadata[key]


def _decode_step(path: Path, metadata: Mapping[str, str]) -> int:
    text = _required(path, metadata, "ganforge.step")
    if not _STEP.fullmatch(text):
        raise refusal(path, f"broken ganforge metadata: ganforge.step {quoted(text, 30)} is not a "
                            "non-negative integer")
    if int(text) > MAX_STEPS:
        raise refusal(path, f"broken ganforge metadata: ganforge.step {text} is above the "
                            f"{MAX_STEPS} steps a recipe can train")
    return int(text)


def _decode_recipe(path: Path, text: str) -> dict[str, Any]:
    """The embedded recipe parsed; it must be TOML whose top-level values are all tables
    (``[run]``, ``[generator]``, ...), as every recipe ganforge writes is."""
    where = "broken ganforge metadata: ganforge.recipe"
    try:
        table = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise refusal(path, f"{where} is not valid TOML: {first[:200]}") from None
    for key, value in table.items():
        if not isinstance(value, dict):
            raise refusal(path, f"{where}: {key_path('$', key)} is {quoted(value, 30)} "
                                f"({_kind(value)}), not a table")
    return table


def _decode_json(path: Path, metadata: Mapping[str, str], key: str) -> dict[str, Any]:
    """Metadata ``key`` decoded as a JSON object (``{}`` when absent)."""
    try:
        value = json.loads(metadata.get(key, "{}"), object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise refusal(path, f"broken ganforge metadata: {key} has the key "
                            f"{quoted(exc.args[0])} twice") from None
    except (ValueError, RecursionError) as exc:
        raise refusal(path, f"broken ganforge metadata: {key} is not valid JSON: "
                            f"{exc}") from None
    if not isinstance(value, dict):
        raise refusal(path, f"broken ganforge metadata: {key} is not a JSON object "
                            f"({_kind(value)})")
    return value


def _decode_versions(path: Path, metadata: Mapping[str, str]) -> dict[str, str]:
    versions = _decode_json(path, metadata, "ganforge.versions")
    for name, version in versions.items():
        if not isinstance(version, str):
            raise refusal(path, f"broken ganforge metadata: ganforge.versions[{quoted(name)}] is "
                                f"{quoted(version, 30)}, not a string")
    return versions


def _decode_optimizers(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    optimizers = _decode_json(path, metadata, "ganforge.optimizers")
    for name, rest in optimizers.items():
        where = f"broken ganforge metadata: ganforge.optimizers[{quoted(name)}]"
        if not isinstance(rest, dict):
            raise refusal(path, f"{where} is not a JSON object")
        groups = rest.get("param_groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise refusal(path, f"{where}.param_groups is not a list of JSON objects")
        for i, group in enumerate(groups):
            params = group.get("params")
            if not isinstance(params, list) or not all(is_int(p) and p >= 0 for p in params):
                raise refusal(path, f"{where}.param_groups[{i}].params is not a list of "
                                    "non-negative integers")
        scalars = rest.get("scalars", {})
        if not isinstance(scalars, dict) or not all(
                _STEP.fullmatch(k) and isinstance(v, dict) for k, v in scalars.items()):
            raise refusal(path, f"{where}.scalars is not a JSON object mapping parameter "
                                "indices to JSON objects")
    return optimizers


def _decode_components(path: Path, metadata: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    components = _decode_json(path, metadata, "ganforge.components")
    for table, values in components.items():
        if not isinstance(values, dict):
            raise refusal(path, f"broken ganforge metadata: ganforge.components[{quoted(table)}] "
                                "is not a JSON object")
    return components


def _decode_trainer(path: Path, metadata: Mapping[str, str]) -> TrainerMeta:
    try:
        return decode_trainer(_decode_json(path, metadata, "ganforge.trainer"))
    except RecipeError as exc:
        raise refusal(path, f"broken ganforge metadata: {_problems(exc)}") from None


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
