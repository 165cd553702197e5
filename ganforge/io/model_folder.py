"""The files of an exported model folder (the Hugging Face Hub layout): their names, and
reading and writing them without trusting what is read.

``model.safetensors`` holds the generator's state dict (weights and buffers: BatchNorm
statistics, spectral-norm vectors) under ``generator.``, and its moving average's under
``generator_ema.`` when the run kept one (:func:`weights_bytes`, :func:`read_weights`). It
is read with the checkpoint reader's checks (:mod:`ganforge.io.safetensors_read`).

``config.json`` is read as untrusted JSON by :func:`read_config_json`: only a regular file
under :data:`MAX_CONFIG_BYTES`, UTF-8, no key given twice and no ``NaN``; what it means is
:mod:`ganforge.io.export_config`'s. Each refusal is one
:class:`~ganforge.core.errors.CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_bytes

from .checkpoint_schema import EMA_PREFIX
from .integrity import INTEGRITY_KEY, integrity_metadata, mismatch, record_problem
from .limits import MAX_CONFIG_BYTES
from .refusals import DuplicateKey, no_duplicate_keys, quoted, refusal
from .safetensors_read import read_verified

#: The files of an exported folder.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
SAMPLES_NAME = "samples.png"
EXPORTED_FILES = (WEIGHTS_NAME, SAMPLES_NAME, CARD_NAME, CONFIG_NAME)
#: Tensor name prefixes in ``model.safetensors``: ``generator.<state_dict key>`` (the raw G)
#: and ``generator_ema.<state_dict key>`` (the moving average of G, when the run kept one).
RAW_PREFIX = "generator"
EMA_WEIGHTS = EMA_PREFIX


# -- model.safetensors --------------------------------------------------------------------

def _by_section(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` renamed ``<section>/<key>``, so each section is one integrity group."""
    return {name.replace(".", "/", 1): tensor for name, tensor in tensors.items()}


def weights_bytes(sections: Mapping[str, Mapping[str, torch.Tensor]]) -> bytes:
    """The file holding each section's tensors as ``<section>.<key>`` (copies on the CPU,
    so tensors that share memory in the module are stored apart), with a SHA-256 of each
    section in its metadata (:mod:`ganforge.io.integrity`; ``format`` stays ``pt``, as
    the Hub's readers expect)."""
    tensors = {f"{prefix}.{key}": value.detach().to("cpu").clone().contiguous()
               for prefix, state in sections.items() for key, value in state.items()}
    return save_bytes(tensors, metadata={
        "format": "pt", INTEGRITY_KEY: integrity_metadata(_by_section(tensors))})


def read_weights(path: str | Path, prefixes: tuple[str, ...]
                 ) -> dict[str, dict[str, torch.Tensor]]:
    """The tensors of ``path`` by section: ``{prefix: {key: tensor}}`` for each of
    ``prefixes``. A tensor under no prefix, a prefix that holds nothing, and a section
    whose bytes do not have the SHA-256 recorded when it was written (a folder exported
    before hashes were recorded has none, and loads as before) are refused."""
    path = Path(path)

    def record_ok(metadata: dict[str, str]) -> None:
        problem = record_problem(metadata)
        if problem is not None:
            raise refusal(path, problem)

    metadata, tensors = read_verified(path, "weights", record_ok)
    damaged = mismatch(metadata, _by_section(tensors))
    if damaged is not None:
        raise refusal(path, damaged)
    sections: dict[str, dict[str, torch.Tensor]] = {prefix: {} for prefix in prefixes}
    stray = []
    for name, tensor in tensors.items():
        prefix, dot, key = name.partition(".")
        if dot and prefix in sections and key:
            sections[prefix][key] = tensor
        else:
            stray.append(name)
    if stray:
        expected = " or ".join(f"{p}." for p in prefixes)
        raise refusal(path, f"tensor {quoted(sorted(stray)[0])} is not under {expected} "
                            f"({len(stray)} such tensor(s))")
    empty = [prefix for prefix, state in sections.items() if not state]
    if empty:
        raise refusal(path, f"holds no {empty[0]}.* tensors, which config.json says it has")
    return sections


# -- config.json --------------------------------------------------------------------------

def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is out of a float's range")
    return value


def read_config_json(path: Path) -> Any:
    """The parsed JSON of an exported folder's ``config.json``; see the module docstring."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise refusal(path, "no such file; a folder written by ganforge export holds "
                            f"{CONFIG_NAME}") from None
    except OSError as exc:
        raise refusal(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refusal(path, "not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise refusal(path, f"{info.st_size} bytes, over the {MAX_CONFIG_BYTES}-byte limit "
                                "of a config file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise refusal(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise refusal(path, f"over the {MAX_CONFIG_BYTES}-byte limit of a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refusal(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=no_duplicate_keys,
                          parse_constant=_no_constant, parse_float=_finite_float)
    except DuplicateKey as exc:
        raise refusal(path, f"the key {quoted(exc.args[0])} is given twice") from None
    except (ValueError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise refusal(path, f"not valid JSON: {first[:200]}") from None
