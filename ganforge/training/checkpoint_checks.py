"""Checks of a checkpoint's state against the live objects it is meant for, before anything
is loaded: a module's state dict (:func:`load_module_state`, and :func:`check_module_layout`
from the header alone, before the module's memory is allocated) and an optimizer's state
(:func:`validate_optimizer_state`).

This module's one job is that comparison; reading the file is
:mod:`ganforge.io.checkpoint_files`'. Every mismatch is named key by key, and all of
them are reported in one :class:`~ganforge.core.errors.CheckpointError` line naming the file;
nothing is loaded when anything is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from ..io.refusals import is_int, quoted, refusal
from ..io.safetensors_read import TensorInfo


def _names(keys: list[str]) -> str:
    return ", ".join(keys)


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor],
                      what: str, source: Path | str) -> None:
    """Load ``state`` into ``module`` after checking keys, shapes, dtypes and finiteness,
    naming every mismatch key by key; nothing is loaded if anything is wrong."""
    problems = layout_problems(
        module, {k: (v.shape, v.dtype) for k, v in state.items() if isinstance(v, torch.Tensor)},
        [k for k, v in state.items() if not isinstance(v, torch.Tensor)])
    for key in sorted(set(module.state_dict()) & set(state)):
        got = state[key]
        if (isinstance(got, torch.Tensor) and (got.is_floating_point() or got.is_complex())
                and not torch.isfinite(got).all()):
            problems.append(f"{key}: non-finite values")
        elif key.rpartition(".")[2] == "running_var" and isinstance(got, torch.Tensor) \
                and got.is_floating_point() and bool((got < 0).any()):
            # a variance is never negative: normalising by its square root gives NaN
            problems.append(f"{key}: {int((got < 0).sum())} negative value(s) in a running "
                            "variance")
    if problems:
        raise refusal(source, f"{what} does not match: {'; '.join(problems)}")
    module.load_state_dict(state)


def check_module_layout(module: torch.nn.Module, entries: Mapping[str, TensorInfo],
                        what: str, source: Path | str) -> None:
    """Compare ``module``'s state dict with the tensor ``entries`` of a checkpoint header
    (keys, shapes, dtypes), naming every mismatch as :func:`load_module_state` does.

    ``module`` may live on the ``meta`` device: built there from a checkpoint's embedded
    recipe it costs no memory, so a recipe that asks for a huge network is refused
    before that network is ever allocated."""
    problems = layout_problems(
        module, {k: (torch.Size(v.shape), _TORCH_DTYPES.get(v.dtype, v.dtype))
                 for k, v in entries.items()})
    if problems:
        raise refusal(source, f"{what} does not match: {'; '.join(problems)}")


#: safetensors dtype names as torch dtypes (names this torch lacks compare as strings).
_TORCH_DTYPES: dict[str, Any] = {
    name: getattr(torch, attr, name) for name, attr in {
        "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
        "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16",
        "BF16": "bfloat16", "F32": "float32", "F64": "float64", "C64": "complex64",
        "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
        "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    }.items()}


def layout_problems(module: torch.nn.Module, got: Mapping[str, tuple[torch.Size, Any]],
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
        raise refusal(source, f"{fail}: {prefix}: not a state dict with param_groups and state")
    live_groups = optimizer.param_groups
    if len(groups) != len(live_groups):
        raise refusal(source, f"{fail}: {prefix}: {len(groups)} param groups in checkpoint, "
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
            if not is_int(index) or index in params:
                problems.append(f"{where}: parameter index {quoted(index, 20)} is not a unique "
                                "integer")
                continue
            params[index] = param
        for key, value in saved.items():
            numbers = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                problems.append(f"{where}/{key}: non-finite value {quoted(value, 30)}")
    for index, entry in state.items():
        param = params.get(index) if is_int(index) else None
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
        raise refusal(source, f"{fail}: {'; '.join(problems)}")


def _step_problems(key: str, value: Any) -> list[str]:
    """Why an optimizer ``step`` entry is not one finite non-negative number (or nothing)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dim() > 1:
            return [f"{key}: shape {list(value.shape)} in checkpoint, a scalar expected"]
        if value.is_complex() or value.dtype == torch.bool:
            return [f"{key}: dtype {value.dtype} in checkpoint, a real number expected"]
        number = value.item()
    elif is_int(value) or isinstance(value, float):
        number = value
    else:
        return [f"{key}: {quoted(value, 30)} is not a number"]
    if not (math.isfinite(number) and number >= 0):
        return [f"{key}: {number} is not a finite non-negative step"]
    return []
