"""What both tracking observers share: the lazy import of their library with one clear
line when it is missing, their settings read from the run's recipe, the tracker's run id
kept in the run directory (so a resumed run continues the same tracked run), and the
recipe as flat parameters and as TOML."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from ..core.errors import PluginError

T = TypeVar("T")

#: A tracker's run id as written to the run directory: W&B ids and MLflow's hex ids.
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class TrackerUnavailable(PluginError):
    """A recipe enables a tracker whose library is not installed (or does not import)."""


def import_tracker(plugin: str, module: str) -> ModuleType:
    """Import ``module`` (``wandb``, ``mlflow.tracking``) for the ``plugin`` observer, or
    raise :class:`TrackerUnavailable` with the one line that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise TrackerUnavailable(
            f"[plugins.{plugin}] enabled = true, but {module.partition('.')[0]} does not "
            f"import here ({error}): pip install \"ganforge[{plugin}]\"") from error


def enabled_settings(recipe: Mapping[str, Any], plugin: str, settings_cls: type[T]) -> T | None:
    """The plugin's settings from the resolved recipe table ``ganforge_run_started``
    receives, or None when its ``[plugins.<plugin>]`` table is absent or not enabled."""
    from ..core.structuring import structure_params

    table = (recipe.get("plugins") or {}).get(plugin)
    if not table or not table.get("enabled", False):
        return None
    settings: T = structure_params(settings_cls, table, f"$.plugins.{plugin}")
    return settings


def run_id_path(run_dir: Path, plugin: str) -> Path:
    """Where the tracker's run id is kept: ``<run_dir>/<plugin>_run_id``."""
    return Path(run_dir) / f"{plugin}_run_id"


def read_run_id(run_dir: Path, plugin: str) -> str | None:
    """The tracker's run id an earlier session of this run wrote, or None."""
    path = run_id_path(run_dir, plugin)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _RUN_ID.fullmatch(text):
        raise PluginError(f"{path}: not a run id ({text[:40]!r}); delete the file to start a "
                          "new tracked run")
    return text


def write_run_id(run_dir: Path, plugin: str, run_id: str) -> None:
    """Keep the tracker's run id in the run directory (written atomically)."""
    from ..io.files import write_text_atomic

    write_text_atomic(run_id_path(run_dir, plugin), run_id + "\n")


def recipe_toml(recipe: Mapping[str, Any], run_dir: Path | None = None) -> str:
    """The resolved recipe as the run directory's ``recipe.toml`` holds it: that file
    itself when ``run_dir`` has it (the trainer writes it before ``ganforge_run_started``),
    else the table rendered (which also holds every plugin's settings at their defaults,
    where the file leaves those out)."""
    import tomli_w

    from ..training.run_dir import RunDirectory

    if run_dir is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return RunDirectory(Path(run_dir)).recipe.read_text(encoding="utf-8")
    return tomli_w.dumps(dict(recipe))


def flat_params(recipe: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The recipe as ``{"generator.width": "4", ...}``: one string per leaf value
    (arrays as JSON), for trackers whose parameters are flat."""
    flat: dict[str, str] = {}
    for key, value in recipe.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_params(value, name + "."))
        elif isinstance(value, str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat
