"""Progress bars for long work (indexing, preparing, scanning): rich on a terminal, silent
otherwise (logs and captured output get the command's one-line summary instead)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(label: str, enabled: bool = True, **kwargs: Any) -> Progress:
    """A stderr progress bar ``label [####    ] n/N ETA``; disabled off a terminal."""
    console = Console(stderr=True)
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not (enabled and console.is_terminal), **kwargs)
