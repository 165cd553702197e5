"""Old home of ``model.safetensors`` reading and writing, now in
:mod:`ganforge.io.model_folder`; kept so that its imports go on working."""

from __future__ import annotations

from ..io.model_folder import read_weights, weights_bytes
from ..io.refusals import library_problem, quoted, refusal
from ..io.safetensors_read import open_regular, parse_safetensors_header, read_header_bytes

__all__ = ["library_problem", "open_regular", "parse_safetensors_header", "quoted",
           "read_header_bytes", "read_weights", "refusal", "weights_bytes"]
