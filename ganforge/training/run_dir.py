"""The layout of a run directory (see DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

import attrs


@attrs.frozen
class RunDirectory:
    """Paths inside ``runs/<name>/``."""

    root: Path

    @property
    def recipe(self) -> Path:
        """The resolved recipe, one flat TOML file."""
        return self.root / "recipe.toml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def metrics(self) -> Path:
        """One JSON object per logged step."""
        return self.root / "metrics.jsonl"

    @property
    def skipped(self) -> Path:
        """Images skipped under ``on_error = "skip"``, one JSON object each."""
        return self.root / "skipped.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    def has_run(self) -> bool:
        """True when something a run writes is already here."""
        return self.recipe.exists() or (
            self.checkpoints.is_dir() and any(self.checkpoints.glob("*.safetensors")))

    def create(self) -> None:
        for folder in (self.root, self.checkpoints, self.samples, self.tensorboard):
            folder.mkdir(parents=True, exist_ok=True)
