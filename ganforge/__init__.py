"""ganforge: a modular, plugin-based GAN toolkit.

The public API is re-exported here and imported lazily, so ``import ganforge`` (and the
command line's ``--help``) stays fast and does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "Component": "core.interfaces",
    "Generator": "core.interfaces",
    "Discriminator": "core.interfaces",
    "Loss": "core.interfaces",
    "Optimizer": "core.interfaces",
    "Scheduler": "core.interfaces",
    "Regularizer": "core.interfaces",
    "Augment": "core.interfaces",
    "ComponentState": "core.interfaces",
    "Dataset": "core.interfaces",
    "Metric": "core.interfaces",
    "FeatureExtractor": "core.interfaces",
    "Callback": "core.interfaces",
    "ImageSpec": "core.interfaces",
    "resolve_image_spec": "core.interfaces",
    "is_conditional": "core.interfaces",
    "loss_takes_labels": "core.interfaces",
    "KINDS": "core.kinds",
    "AuditResult": "core.audit",
    "param": "core.params",
    "Registry": "core.registry",
    "hookimpl": "core.hookspecs",
    "hookspec": "core.hookspecs",
    "load_plugins": "plugins",
    "Plugins": "plugins",
    "GanforgeError": "core.errors",
    "RecipeError": "core.errors",
    "Recipe": "recipe",
    "load_recipe": "recipe",
    "Trainer": "training",
    "load_generator": "sharing",
    "load_experiment": "training.experiment_loading",
    # The Python API (docs/api.md): what every command does, as functions.
    "train": "api.train",
    "evaluate": "api.evaluate",
    "sample": "api.sample",
    "export": "api.export",
    "ablate": "api.ablate",
    "check": "api.check",
    "interpolate": "api.latent",
    "arithmetic": "api.latent",
    "UsageError": "core.errors",
    "CheckpointError": "core.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .api.ablate import ablate
    from .api.check import check
    from .api.evaluate import evaluate
    from .api.export import export
    from .api.latent import arithmetic, interpolate
    from .api.sample import sample
    from .api.train import train
    from .core.audit import AuditResult
    from .core.errors import CheckpointError, GanforgeError, RecipeError, UsageError
    from .core.hookspecs import hookimpl, hookspec
    from .core.interfaces import (
        Augment,
        Callback,
        Component,
        ComponentState,
        Dataset,
        Discriminator,
        FeatureExtractor,
        Generator,
        ImageSpec,
        Loss,
        Optimizer,
        Regularizer,
        Scheduler,
        is_conditional,
        loss_takes_labels,
        resolve_image_spec,
    )
    from .core.kinds import KINDS
    from .core.params import param
    from .core.registry import Registry
    from .plugins import Plugins, load_plugins
    from .recipe import Recipe, load_recipe
    from .sharing import load_generator
    from .training import Trainer
    from .training.experiment_loading import load_experiment


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
