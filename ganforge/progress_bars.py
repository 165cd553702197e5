"""Moved to :mod:`ganforge.core.progress_bars`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import progress_bars as _module

if TYPE_CHECKING:
    from .core.progress_bars import *  # noqa: F403

sys.modules[__name__] = _module
