"""Moved to :mod:`ganforge.core.seeds`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import seeds as _module

if TYPE_CHECKING:
    from .core.seeds import *  # noqa: F403

sys.modules[__name__] = _module
