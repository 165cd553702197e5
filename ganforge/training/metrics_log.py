"""Where logged metrics go: ``metrics.jsonl`` and TensorBoard scalars and images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import torch


def open_jsonl(path: Path, start_step: int) -> TextIO:
    """Open a step-stamped JSON-lines log for appending, for a run starting at ``start_step``:
    a new run starts it empty; a resumed one drops the lines of steps after ``start_step``."""
    if start_step > 0 and path.exists():
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= start_step]
        path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    elif start_step == 0:
        path.write_text("", encoding="utf-8")
    return open(path, "a", encoding="utf-8")  # noqa: SIM115 - the caller closes it


class MetricsLog:
    """Appends metrics to ``metrics.jsonl`` and TensorBoard under ``tb/``.

    On resume at ``start_step`` the lines and events logged after that step (by the run
    that was interrupted) are dropped, so the log matches the restored state.
    """

    def __init__(self, jsonl: Path, tensorboard: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.jsonl = jsonl
        self._file = open_jsonl(jsonl, start_step)
        self.writer = SummaryWriter(log_dir=str(tensorboard),
                                    purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Record one logged step."""
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def image_grid(self, step: int, grid: torch.Tensor) -> None:
        """Record a sample grid (CHW in [0, 1]) in TensorBoard."""
        self.writer.add_image("samples", grid, step)

    def close(self) -> None:
        self._file.close()
        self.writer.close()
