"""``ganforge.train``: train a recipe in a run directory (what ``ganforge run`` does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import plugins_or_installed, recipe_from, recipe_name

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..recipe import Recipe
    from ..training.trainer import TrainResult


def default_run_dir(recipe: str | Path | Recipe | Mapping[str, Any], resolved: Recipe
                    ) -> Path:
    """``run.out`` when the recipe sets it, else ``runs/<recipe name>``."""
    return Path(resolved.run.out or Path("runs") / recipe_name(recipe))


def train(recipe: str | Path | Recipe | Mapping[str, Any], plugins: Plugins | None = None,
          run_dir: str | Path | None = None, *, overrides: Sequence[str] = (),
          out: str | Path | None = None, resume: bool = False, callbacks: Sequence[Any] = (),
          progress: bool = False) -> TrainResult:
    """Train ``recipe`` (a file, a recipe by name such as ``"ganforge:quickstart"``, a
    table or a :class:`~ganforge.recipe.Recipe`) after ``overrides`` (``"run.steps=100"``)
    in ``out`` (default ``run.out`` or ``runs/<recipe name>``); ``resume`` continues the
    newest complete checkpoint there. ``callbacks`` are :class:`~ganforge.Callback`
    instances called as the run goes (their state is checkpointed). Returns the
    :class:`~ganforge.training.trainer.TrainResult`; raises ganforge's errors
    (:class:`~ganforge.core.errors.GanforgeError`), never exits.

    ``plugins`` and ``run_dir`` keep the older call ``train(recipe, plugins, run_dir)``
    working; ``plugins`` defaults to the installed ones. For example::

        result = ganforge.train("ganforge:quickstart", overrides=["run.steps=200"],
                                out="runs/try")
        print(result.step, result.checkpoint)
    """
    from .. import training  # (looked up when called: a test may replace training.train)
    from ..core.errors import UsageError

    if run_dir is not None and out is not None:
        raise UsageError("give the run directory once: run_dir or out, not both")
    plugins = plugins_or_installed(plugins)
    resolved = recipe_from(recipe, plugins, overrides)
    where = Path(out or run_dir or default_run_dir(recipe, resolved))
    if callbacks:
        return training.train(resolved, plugins, where, resume=resume, progress=progress,
                              callbacks=list(callbacks))
    return training.train(resolved, plugins, where, resume=resume, progress=progress)
