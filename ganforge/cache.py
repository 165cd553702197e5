"""Moved to :mod:`ganforge.core.cache`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import cache as _module

if TYPE_CHECKING:
    from .core.cache import *  # noqa: F403

sys.modules[__name__] = _module
