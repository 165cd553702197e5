"""The user cache directory: ``$GANFORGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganforge``,
else ``~/.cache/ganforge``. Never the current directory."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """A folder under the user cache directory (not created)."""
    base = os.environ.get("GANFORGE_CACHE_DIR")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "ganforge"
    return root.joinpath(*parts)
