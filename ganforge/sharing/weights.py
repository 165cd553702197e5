"""``model.safetensors`` of an exported model folder: the generator's state dict (weights
and buffers: BatchNorm statistics, spectral-norm vectors) under ``generator.``, and its
moving average's under ``generator_ema.`` when the run kept one.

Read without trusting the file, with the checkpoint reader's checks (a regular file, the
header's length bounded before it is parsed, no key given twice, every entry exactly
``dtype``/``shape``/``data_offsets`` with a known dtype, the very bytes checked are the
bytes loaded); any problem is one :class:`~ganforge.errors.CheckpointError` line naming it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..training.checkpoint_format import (
    library_problem,
    open_regular,
    parse_safetensors_header,
    quoted,
    read_header_bytes,
    refusal,
)


def weights_bytes(sections: Mapping[str, Mapping[str, torch.Tensor]]) -> bytes:
    """The file holding each section's tensors as ``<section>.<key>`` (copies on the CPU,
    so tensors that share memory in the module are stored apart)."""
    tensors = {f"{prefix}.{key}": value.detach().to("cpu").clone().contiguous()
               for prefix, state in sections.items() for key, value in state.items()}
    return save_bytes(tensors, metadata={"format": "pt"})


def read_weights(path: str | Path, prefixes: tuple[str, ...]
                 ) -> dict[str, dict[str, torch.Tensor]]:
    """The tensors of ``path`` by section: ``{prefix: {key: tensor}}`` for each of
    ``prefixes``. A tensor under no prefix, and a prefix that holds nothing, are refused."""
    path = Path(path)
    try:
        f, size = open_regular(path)
        with f:
            raw = read_header_bytes(f, size, path)
            parse_safetensors_header(raw, path)
            f.seek(0)
            data = f.read(size + 1)
    except OSError as exc:
        raise refusal(path, f"cannot read weights: {exc.strerror or exc}") from None
    if len(data) != size or data[:8 + len(raw)] != struct.pack("<Q", len(raw)) + raw:
        raise refusal(path, "file changed while being read")
    try:
        tensors = load_bytes(data)
    except SafetensorError as exc:
        raise refusal(path, library_problem(exc)) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise refusal(path, f"cannot read tensors: {exc}") from None
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
