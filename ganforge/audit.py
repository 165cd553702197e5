"""Moved to :mod:`ganforge.core.audit`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import audit as _module

if TYPE_CHECKING:
    from .core.audit import *  # noqa: F403

sys.modules[__name__] = _module
