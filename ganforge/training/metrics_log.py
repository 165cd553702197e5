"""Where logged metrics go: ``metrics.jsonl`` and TensorBoard scalars and images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import torch

from ..io.files import read_jsonl, write_text_atomic, writing


def open_jsonl(path: Path, start_step: int,
               note: Callable[[str], None] | None = None) -> TextIO:
    """Open a step-stamped JSON-lines log for appending, for a run starting at ``start_step``:
    a new run starts it empty; a resumed one keeps only the lines of steps up to
    ``start_step``. A torn last line (a crash or a full disk mid-write) is dropped, and
    ``note`` is told so."""
    if start_step > 0 and path.exists():
        log = read_jsonl(path)
        if note and (message := log.note(path)):
            note(message)
        kept = [r for r in log.records if _step(r) <= start_step]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
    else:
        with writing(path):
            path.write_text("", encoding="utf-8")
    with writing(path):
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 - the caller closes it


def _step(record: dict[str, object]) -> int:
    step = record.get("step", 0)
    return step if isinstance(step, int) else 0


class JsonlWriter:
    """Appends one JSON object per line and flushes it; a failed write names the file."""

    def __init__(self, path: Path, start_step: int,
                 note: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._file = open_jsonl(path, start_step, note)

    def write(self, record: dict[str, object]) -> None:
        with writing(self.path):
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        with writing(self.path):
            self._file.close()


class MetricsLog:
    """Appends metrics to ``metrics.jsonl`` and TensorBoard under ``tb/``, and scores with
    their protocols to ``evaluations.jsonl`` (made at the first evaluation).

    On resume at ``start_step`` the lines and events logged after that step (by the run
    that was interrupted) are dropped, so the log matches the restored state.
    """

    def __init__(self, jsonl: Path, tensorboard: Path, start_step: int,
                 note: Callable[[str], None] | None = None,
                 evaluations: Path | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.jsonl = JsonlWriter(jsonl, start_step, note)
        self._evaluations_path, self._start, self._note = evaluations, start_step, note
        self._evaluations: JsonlWriter | None = None
        if evaluations is not None and start_step > 0 and evaluations.exists():
            self._evaluations = JsonlWriter(evaluations, start_step, note)
        with writing(tensorboard):
            # Events after start_step, left by the run that was interrupted (or, on a
            # requeue from step 0, all of them) are hidden by TensorBoard.
            self.writer = SummaryWriter(log_dir=str(tensorboard), purge_step=start_step + 1)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Record one logged step."""
        self.jsonl.write({"step": step, **values})
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def image_grid(self, step: int, grid: torch.Tensor) -> None:
        """Record a sample grid (CHW in [0, 1]) in TensorBoard."""
        self.writer.add_image("samples", grid, step)

    def evaluation(self, step: int, record: dict[str, object]) -> None:
        """Record one score with its protocol (``evaluations.jsonl``)."""
        if self._evaluations_path is None:
            return
        if self._evaluations is None:
            self._evaluations = JsonlWriter(self._evaluations_path, self._start, self._note)
        self._evaluations.write({"step": step, **record})

    def close(self) -> None:
        try:
            self.jsonl.close()
            if self._evaluations is not None:
                self._evaluations.close()
        finally:
            self.writer.close()
