"""A checkpoint's metadata: the attrs classes it decodes into (:class:`TrainerMeta`,
:class:`CheckpointHeader`, :class:`CheckpointContents`, ...) and its decoding.

Metadata (all strings): ``ganforge.format``, ``ganforge.step``, ``ganforge.recipe`` (the
resolved TOML), ``ganforge.versions``, ``ganforge.optimizers`` (param groups and non-tensor
state, as JSON), ``ganforge.trainer`` (the trainer's counters, as JSON),
``ganforge.components`` (the JSON-able state of stateful components by recipe table; their
tensors are named ``state/<table>/<name>``) and ``ganforge.integrity``
(:mod:`ganforge.io.integrity`).

:func:`decode_metadata` decodes and validates all of it before any tensor is read: the
trainer's counters through the project's cattrs converter, the embedded recipe as TOML
whose top-level values are tables. Every refusal is one
:class:`~ganforge.core.errors.CheckpointError` line naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.errors import RecipeError
from ..core.structuring import key_path, structure_params
from . import integrity
from .limits import MAX_BATCHES, MAX_ROLLBACKS, MAX_STEPS, MAX_THREADS
from .refusals import DuplicateKey, is_int, kind, no_duplicate_keys, problems_line, quoted, refusal
from .safetensors_read import TensorInfo

FORMAT_VERSION = "1"
#: Tensor prefix of the EMA of G (``[ema]``) in a checkpoint.
EMA_PREFIX = "generator_ema"
_STEP = re.compile(r"[0-9]{1,18}")
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


# -- decoding -----------------------------------------------------------------------------

def decode_metadata(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """Check the format and decode every piece of ganforge metadata; returns the fields
    :class:`CheckpointHeader` and :class:`CheckpointContents` share."""
    if metadata.get("ganforge.format") != FORMAT_VERSION:
        raise refusal(path, f"not a ganforge checkpoint "
                            f"(format {quoted(metadata.get('ganforge.format'), 30)})")
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
                                f"({kind(value)}), not a table")
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
                            f"({kind(value)})")
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
        raise refusal(path, f"broken ganforge metadata: {problems_line(exc)}") from None


def decode_trainer(data: Mapping[str, Any]) -> TrainerMeta:
    """The trainer's counters from their JSON form, through the project's strict cattrs
    converter (:func:`~ganforge.core.structuring.structure_params`): unknown keys, wrong types and
    values out of range are refused, every problem at once with its path
    (``ganforge.trainer.best.step``), as a :class:`~ganforge.core.errors.RecipeError`."""
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
