"""What a user watches while a run trains: a rich progress bar, or log lines when the
output is not a terminal (CI logs, files)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Shows step, images/s, D and G losses and the ETA."""

    def __init__(self, total: int, start: int, enabled: bool = True,
                 console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.total = total
        self._progress: Progress | None = None
        # Shown until the first log step: a run that has not read its losses back yet must
        # not look like one whose losses are NaN (a divergence).
        self._fields: dict[str, Any] = {"ips": "-", "losses": "D -  G -"}
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[ips]:>7} img/s"),
                TextColumn("{task.fields[losses]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self._task = self._progress.add_task("train", total=total, completed=start,
                                                 **self._fields)
        self._started = time.monotonic()

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, step: int) -> None:
        """Move the bar to ``step`` (no device synchronisation involved)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def logged(self, step: int, metrics: dict[str, float]) -> None:
        """New read-back metrics: shown on the bar, or printed as one line."""
        ips = metrics.get("images_per_s", 0.0)
        loss_d = metrics.get("loss_d", float("nan"))
        loss_g = metrics.get("loss_g", float("nan"))
        self._fields.update(ips=f"{ips:.1f}", losses=f"D {loss_d:.3f}  G {loss_g:.3f}")
        if self._progress is not None:
            self._progress.update(self._task, completed=step, **self._fields)
        elif self.enabled:
            self.console.print(f"step {step}/{self.total}  {ips:.1f} img/s  "
                               f"D {loss_d:.4f}  G {loss_g:.4f}", highlight=False)

    def note(self, message: str) -> None:
        """A one-off message (checkpoint written, sample written, ...)."""
        if self.enabled:
            self.console.print(message, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        """A message the user must see even with the progress display off."""
        # Messages name recipe tables ("[regularizers.gp]"): printed as text, not markup.
        self.console.print(f"note: {message}", highlight=False, soft_wrap=True, markup=False)
