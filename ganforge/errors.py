"""Moved to :mod:`ganforge.core.errors`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import errors as _module

if TYPE_CHECKING:
    from .core.errors import *  # noqa: F403

sys.modules[__name__] = _module
