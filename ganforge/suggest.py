"""Moved to :mod:`ganforge.core.suggest`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import suggest as _module

if TYPE_CHECKING:
    from .core.suggest import *  # noqa: F403

sys.modules[__name__] = _module
