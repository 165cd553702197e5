"""Entry point of the ``{{name}}`` plugin: registers its components and its settings with
ganforge, and observes runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from ganforge import Registry, hookimpl, param

PLUGIN = "{{name}}"


@attrs.frozen
class Settings:
    """The plugin's own recipe table, ``[plugins.{{name}}]``: validated with the recipe
    (a misspelt key is refused with its ``$.plugins.{{name}}`` path) and recorded with the
    run. Every field needs a default: a recipe without the table gets them all."""

    announce: bool = param(False, "print one line when a run starts or resumes")


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register the components; each is ``{{name}}:<name>`` in recipes."""
    from .augment import BrightnessContrast  # only: augment
    from .dataset import StripesDataset  # only: dataset
    from .discriminator import MLPDiscriminator  # only: discriminator
    from .extractor import ColourStatistics  # only: extractor
    from .generator import MLPGenerator  # only: generator
    from .loss import LeastSquaresLoss  # only: loss
    from .optimizer import SGDOptimizer  # only: optimizer
    from .regularizer import DriftPenalty  # only: regularizer
    from .scheduler import StepDecay  # only: scheduler

    registry.register("generator", "mlp", MLPGenerator)  # only: generator
    registry.register("discriminator", "mlp", MLPDiscriminator)  # only: discriminator
    registry.register("loss", "least_squares", LeastSquaresLoss)  # only: loss
    registry.register("optimizer", "sgd", SGDOptimizer)  # only: optimizer
    registry.register("scheduler", "step_decay", StepDecay)  # only: scheduler
    registry.register("regularizer", "drift", DriftPenalty)  # only: regularizer
    registry.register("augment", "brightness_contrast", BrightnessContrast)  # only: augment
    registry.register("dataset", "stripes", StripesDataset)  # only: dataset
    registry.register("extractor", "colour_stats", ColourStatistics)  # only: extractor
    registry.register_settings(Settings)


def settings_of(recipe: dict[str, Any]) -> Settings:
    """The ``[plugins.{{name}}]`` settings of a resolved recipe (what ``ganforge_run_started``
    receives; already validated against :class:`Settings`), defaults when it has none."""
    table = (recipe.get("plugins") or {}).get(PLUGIN) or {}
    return Settings(**table)


@hookimpl
def ganforge_run_started(run_dir: Path, recipe: dict[str, Any], step: int) -> None:
    """An observer hook (see ganforge/hookspecs.py for the others: ganforge_log,
    ganforge_checkpoint_saved, ...). It runs in the main process only; an exception here
    disables the plugin for the rest of the run, not the run."""
    if settings_of(recipe).announce:
        print(f"[{PLUGIN}] run {run_dir} starts at step {step}")
