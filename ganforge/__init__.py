"""ganforge: a modular, plugin-based GAN toolkit.

The public API is re-exported here and imported lazily, so ``import ganforge`` (and the
command line's ``--help``) stays fast and does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "Component": "interfaces",
    "Generator": "interfaces",
    "Discriminator": "interfaces",
    "Loss": "interfaces",
    "Optimizer": "interfaces",
    "Scheduler": "interfaces",
    "Regularizer": "interfaces",
    "Augment": "interfaces",
    "ComponentState": "interfaces",
    "Dataset": "interfaces",
    "Metric": "interfaces",
    "FeatureExtractor": "interfaces",
    "Callback": "interfaces",
    "ImageSpec": "interfaces",
    "resolve_image_spec": "interfaces",
    "is_conditional": "interfaces",
    "loss_takes_labels": "interfaces",
    "KINDS": "kinds",
    "AuditResult": "audit",
    "param": "params",
    "Registry": "registry",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "load_plugins": "plugins",
    "Plugins": "plugins",
    "GanforgeError": "errors",
    "RecipeError": "errors",
    "Recipe": "recipe",
    "load_recipe": "recipe",
    "Trainer": "training",
    "train": "training",
    "load_generator": "sharing",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .audit import AuditResult
    from .errors import GanforgeError, RecipeError
    from .hookspecs import hookimpl, hookspec
    from .interfaces import (
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
    from .kinds import KINDS
    from .params import param
    from .plugins import Plugins, load_plugins
    from .recipe import Recipe, load_recipe
    from .registry import Registry
    from .sharing import load_generator
    from .training import Trainer, train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
