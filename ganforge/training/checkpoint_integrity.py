"""Old home of :mod:`ganforge.io.integrity`, kept so that its imports go on working: this
name is that module (setting an attribute here sets it there)."""

from __future__ import annotations

import sys

from ..io import integrity as _integrity
from ..io.integrity import (
    INTEGRITY_KEY,
    group_digests,
    integrity_metadata,
    mismatch,
    record_problem,
    tensor_group,
)

__all__ = ["INTEGRITY_KEY", "group_digests", "integrity_metadata", "mismatch",
           "record_problem", "tensor_group"]

sys.modules[__name__] = _integrity
