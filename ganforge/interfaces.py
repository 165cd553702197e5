"""Moved to :mod:`ganforge.core.interfaces`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import interfaces as _module

if TYPE_CHECKING:
    from .core.interfaces import *  # noqa: F403

sys.modules[__name__] = _module
