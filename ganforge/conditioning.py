"""Alias of :mod:`ganforge.nn.conditioning`, where these helpers live now (the nn helpers layer).

This module *is* that one: ``sys.modules`` maps both names to one module object, so every
name, private ones included, and monkeypatching through either name keep working.
"""

import sys
from typing import TYPE_CHECKING

from .nn import conditioning as _module

if TYPE_CHECKING:  # what type checkers see under the old name
    from .nn.conditioning import *  # noqa: F403

sys.modules[__name__] = _module
