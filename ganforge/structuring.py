"""Moved to :mod:`ganforge.core.structuring`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import structuring as _module

if TYPE_CHECKING:
    from .core.structuring import *  # noqa: F403

sys.modules[__name__] = _module
