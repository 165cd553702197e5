"""Moved to :mod:`ganforge.core.params`; this old path keeps working (the same module)."""

import sys
from typing import TYPE_CHECKING

from .core import params as _module

if TYPE_CHECKING:
    from .core.params import *  # noqa: F403

sys.modules[__name__] = _module
