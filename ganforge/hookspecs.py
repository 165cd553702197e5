"""Moved to :mod:`ganforge.core.hookspecs`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import hookspecs as _module

if TYPE_CHECKING:
    from .core.hookspecs import *  # noqa: F403

sys.modules[__name__] = _module
