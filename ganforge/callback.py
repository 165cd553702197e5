"""Moved to :mod:`ganforge.core.callback`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import callback as _module

if TYPE_CHECKING:
    from .core.callback import *  # noqa: F403

sys.modules[__name__] = _module
