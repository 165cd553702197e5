"""Moved to :mod:`ganforge.core.registry`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import registry as _module

if TYPE_CHECKING:
    from .core.registry import *  # noqa: F403

sys.modules[__name__] = _module
