"""Moved to :mod:`ganforge.core.kinds`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import kinds as _module

if TYPE_CHECKING:
    from .core.kinds import *  # noqa: F403

sys.modules[__name__] = _module
