"""The MLflow observer: ``[plugins.mlflow]``, off unless ``enabled = true``.

Logs every ``ganforge_log`` call as metrics at the run's step, every sample grid as an
artifact under ``samples/``, the resolved recipe as parameters (dotted keys:
``generator.width``) and as the artifact ``recipe.toml``, and, with ``log_checkpoints``,
every checkpoint under ``checkpoints/``. The tracking store defaults to a file store in the
run directory (``<run_dir>/mlruns``); the MLflow run id is kept in
``<run_dir>/mlflow_run_id``, so a resumed run continues the same MLflow run. ``mlflow`` is
imported only when a run enables the observer; it talks to the store through
``MlflowClient``, never through MLflow's process-wide active run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import attrs

from ..core.hookspecs import hookimpl
from ..core.params import param
from ..core.registry import Registry
from ._common import (
    enabled_settings,
    flat_params,
    import_tracker,
    read_run_id,
    recipe_toml,
    write_run_id,
)

PLUGIN = "mlflow"
#: MLflow's limits on one log_batch call.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
#: The longest parameter value every MLflow version takes (newer ones take 6000).
_PARAM_LENGTH = 500
#: Characters MLflow refuses in a metric or parameter name, replaced by ``_``.
_NOT_IN_KEY = re.compile(r"[^\w\-. :/]")


@attrs.frozen
class MlflowSettings:
    """Settings of the MLflow observer (``[plugins.mlflow]``)."""

    #: An observer: changing this table does not change what a run computes, so a resumed
    #: run may turn tracking on, off or elsewhere (ganforge.training.resume).
    affects_training: ClassVar[bool] = False

    enabled: bool = param(False, "log this run to MLflow")
    tracking_uri: str | None = param(None, "the tracking store or server; unset: "
                                     "MLFLOW_TRACKING_URI, else a file store in "
                                     "<run_dir>/mlruns")
    experiment: str = param("ganforge", "the MLflow experiment (created when missing)")
    run_name: str | None = param(None, "the MLflow run's name; unset: the run directory's "
                                 "name")
    log_checkpoints: bool = param(False, "log every checkpoint as an artifact under "
                                  "checkpoints/ (a copy of each in the artifact store)")


@attrs.define
class _Session:
    """The MLflow run of the training run being observed."""

    client: Any
    run_id: str
    settings: MlflowSettings


class MlflowObserver:
    """The plugin object: registers ``[plugins.mlflow]`` and observes runs that enable it.

    Observer hooks carry no handle of the run, so the MLflow run being logged to lives on
    this object; the plugin loader gets a new one per :func:`ganforge.load_plugins` call
    (see :func:`__getattr__`), so no state is shared between plugin managers.
    """

    def __init__(self) -> None:
        self._session: _Session | None = None

    @hookimpl
    def ganforge_register(self, registry: Registry) -> None:
        registry.register_settings(MlflowSettings)

    @hookimpl
    def ganforge_run_started(self, run_dir: Path, recipe: dict[str, Any], step: int) -> None:
        self._close()  # a run of this process that ended without ganforge_run_finished
        settings = enabled_settings(recipe, PLUGIN, MlflowSettings)
        if settings is None:
            return
        tracking = import_tracker(PLUGIN, "mlflow.tracking")
        run_dir = Path(run_dir)
        uri = (settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
               or (run_dir / "mlruns").resolve().as_uri())
        if urlparse(uri).scheme in ("", "file"):
            # MLflow 3 refuses its file store unless told otherwise; a file store is what
            # works with no server and no database, so for one ganforge opts in.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = tracking.MlflowClient(tracking_uri=uri)
        run_id = self._resumable(client, read_run_id(run_dir, PLUGIN))
        logged_params: dict[str, str] = {}
        if run_id is None:
            run = client.create_run(_experiment_id(client, settings.experiment),
                                    run_name=settings.run_name or run_dir.name,
                                    tags={"ganforge.run_dir": str(run_dir.resolve())})
            run_id = run.info.run_id
            write_run_id(run_dir, PLUGIN, run_id)
        else:
            client.update_run(run_id, status="RUNNING")
            logged_params = client.get_run(run_id).data.params
        self._session = _Session(client, run_id, settings)
        # MLflow parameters cannot change: a resumed run logs only those it lacks (a
        # changed value is in the new recipe.toml).
        params = {_key(k): _value(v) for k, v in flat_params(recipe).items()}
        fresh = [k for k in params if k not in logged_params]
        entities = import_tracker(PLUGIN, "mlflow.entities")
        for start in range(0, len(fresh), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=[entities.Param(k, params[k])
                                             for k in fresh[start:start + _PARAMS_PER_BATCH]])
        client.log_text(run_id, recipe_toml(recipe, run_dir), "recipe.toml")

    @hookimpl
    def ganforge_log(self, step: int, metrics: dict[str, float]) -> None:
        session = self._session
        if session is None:
            return
        entities = import_tracker(PLUGIN, "mlflow.entities")
        now = int(time.time() * 1000)
        rows = [entities.Metric(_key(k), float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(rows), _METRICS_PER_BATCH):
            session.client.log_batch(session.run_id,
                                     metrics=rows[start:start + _METRICS_PER_BATCH])

    @hookimpl
    def ganforge_sample_written(self, step: int, path: Path) -> None:
        if self._session is not None:
            self._session.client.log_artifact(self._session.run_id, str(path), "samples")

    @hookimpl
    def ganforge_checkpoint_saved(self, step: int, path: Path) -> None:
        session = self._session
        if session is not None and session.settings.log_checkpoints:
            session.client.log_artifact(session.run_id, str(path), "checkpoints")

    @hookimpl
    def ganforge_run_finished(self, run_dir: Path, step: int) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.client.set_terminated(session.run_id, "FINISHED")

    @staticmethod
    def _resumable(client: Any, run_id: str | None) -> str | None:
        """``run_id`` when that run is in the store and not deleted, else None (a new
        run: the tracking store changed, or the run was deleted)."""
        if run_id is None:
            return None
        exceptions = import_tracker(PLUGIN, "mlflow.exceptions")
        try:
            run = client.get_run(run_id)
        except exceptions.MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return run_id if run.info.lifecycle_stage == "active" else None

    def _close(self) -> None:
        """Leave a run this process did not finish as ``KILLED``."""
        session, self._session = self._session, None
        if session is not None:
            session.client.set_terminated(session.run_id, "KILLED")


def _experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created when missing (or by a concurrent run)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:
        found = client.get_experiment_by_name(name)  # another process created it first
        if found is None:
            raise
        return str(found.experiment_id)


def _value(text: str) -> str:
    """A parameter value MLflow takes: a longer one says where the whole value is."""
    if len(text) <= _PARAM_LENGTH:
        return text
    return f"({len(text)} characters: see the artifact recipe.toml)"


def _key(name: str) -> str:
    """A metric or parameter name MLflow accepts."""
    return _NOT_IN_KEY.sub("_", name)


def __getattr__(name: str) -> Any:
    """``plugin``, the entry point's object: a new :class:`MlflowObserver` each time the
    loader asks, so each plugin manager observes with a state of its own."""
    if name == "plugin":
        return MlflowObserver()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
