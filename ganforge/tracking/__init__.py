"""Experiment tracking: a Weights & Biases observer and an MLflow observer.

Each is a plugin of ganforge's own distribution (entry points ``wandb`` and ``mlflow`` in the
``ganforge`` group), off unless a recipe enables it in ``[plugins.wandb]`` or
``[plugins.mlflow]``; ``pip install "ganforge[wandb]"`` / ``"ganforge[mlflow]"`` installs the
library it needs, which is imported only when a run enables it. See ``docs/tracking.md``.
"""

from __future__ import annotations

from ._common import TrackerUnavailable
from .mlflow_observer import MlflowObserver, MlflowSettings
from .wandb_observer import WandbObserver, WandbSettings

__all__ = ["MlflowObserver", "MlflowSettings", "TrackerUnavailable", "WandbObserver",
           "WandbSettings"]
