"""The Weights & Biases observer: ``[plugins.wandb]``, off unless ``enabled = true``.

Logs every ``ganforge_log`` call as one history row at the run's step, every sample grid as
a ``wandb.Image`` under ``samples``, the resolved recipe as the run's config and as a
``recipe.toml`` artifact, and, with ``log_checkpoints``, every checkpoint as a version of a
``model`` artifact. The W&B run id is kept in ``<run_dir>/wandb_run_id``, so a resumed run
continues the same W&B run. ``wandb`` is imported only when a run enables the observer.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any, ClassVar

import attrs

from ..core.hookspecs import hookimpl
from ..core.params import param
from ..core.registry import Registry
from ._common import enabled_settings, import_tracker, read_run_id, recipe_toml, write_run_id

PLUGIN = "wandb"
MODES = ("online", "offline", "disabled")
#: W&B run ids: 8 of these, as wandb itself draws them.
_ID_CHARACTERS = string.ascii_lowercase + string.digits


@attrs.frozen
class WandbSettings:
    """Settings of the Weights & Biases observer (``[plugins.wandb]``)."""

    #: An observer: changing this table does not change what a run computes, so a resumed
    #: run may turn tracking on, off or elsewhere (ganforge.training.resume).
    affects_training: ClassVar[bool] = False

    enabled: bool = param(False, "log this run to Weights & Biases")
    project: str = param("ganforge", "the W&B project")
    entity: str | None = param(None, "the W&B team or user; unset: your default entity")
    mode: str | None = param(None, "'online', 'offline' (sync later with `wandb sync`) or "
                             "'disabled'; unset: WANDB_MODE, else online",
                             validator=attrs.validators.optional(attrs.validators.in_(MODES)))
    name: str | None = param(None, "the W&B run's display name; unset: the run directory's "
                             "name")
    tags: tuple[str, ...] = param((), "tags of the W&B run")
    log_checkpoints: bool = param(False, "upload every checkpoint as a version of a 'model' "
                                  "artifact (W&B keeps a copy of each: disk and upload)")


@attrs.define
class _Session:
    """The W&B run of the training run being observed."""

    wandb: Any
    run: Any
    settings: WandbSettings
    #: The lowest step W&B still takes: it drops rows below its current step (with a
    #: warning each), which a resumed run or a divergence rollback would log again.
    floor: int = 0


class WandbObserver:
    """The plugin object: registers ``[plugins.wandb]`` and observes runs that enable it.

    Observer hooks carry no handle of the run, so the W&B run being logged to lives on
    this object; the plugin loader gets a new one per :func:`ganforge.load_plugins` call
    (see :func:`__getattr__`), so no state is shared between plugin managers.
    """

    def __init__(self) -> None:
        self._session: _Session | None = None

    @hookimpl
    def ganforge_register(self, registry: Registry) -> None:
        registry.register_settings(WandbSettings)

    @hookimpl
    def ganforge_run_started(self, run_dir: Path, recipe: dict[str, Any], step: int) -> None:
        self._close()  # a run of this process that ended without ganforge_run_finished
        settings = enabled_settings(recipe, PLUGIN, WandbSettings)
        if settings is None or (settings.mode or os.environ.get("WANDB_MODE")) == "disabled":
            return
        wandb = import_tracker(PLUGIN, "wandb")
        run_dir = Path(run_dir)
        run_id = read_run_id(run_dir, PLUGIN)
        if run_id is None:
            # Kept before the W&B run starts: a session killed during wandb.init resumes it.
            run_id = "".join(secrets.choice(_ID_CHARACTERS) for _ in range(8))
            write_run_id(run_dir, PLUGIN, run_id)
        run = wandb.init(
            project=settings.project, entity=settings.entity, name=settings.name or run_dir.name,
            tags=list(settings.tags) or None, mode=settings.mode, id=run_id, resume="allow",
            # W&B's own files go into the run directory, unless WANDB_DIR says otherwise.
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir))
        self._session = _Session(wandb, run, settings, floor=int(run.step or 0))
        run.config.update(recipe, allow_val_change=True)
        artifact = wandb.Artifact(f"recipe-{run.id}", type="recipe",
                                  metadata={"step": step})
        with artifact.new_file("recipe.toml", encoding="utf-8") as f:
            f.write(recipe_toml(recipe, run_dir))
        run.log_artifact(artifact)

    @hookimpl
    def ganforge_log(self, step: int, metrics: dict[str, float]) -> None:
        if self._session is not None and self._logs(step):
            self._session.run.log(dict(metrics), step=step)

    @hookimpl
    def ganforge_sample_written(self, step: int, path: Path) -> None:
        session = self._session
        if session is not None and self._logs(step):
            image = session.wandb.Image(str(path), caption=f"step {step}")
            session.run.log({"samples": image}, step=step)

    @hookimpl
    def ganforge_checkpoint_saved(self, step: int, path: Path) -> None:
        session = self._session
        if session is None or not session.settings.log_checkpoints:
            return
        path = Path(path)
        artifact = session.wandb.Artifact(f"checkpoints-{session.run.id}", type="model",
                                          metadata={"step": step})
        # A copy is staged: ganforge rotates old checkpoints away before W&B uploads them.
        artifact.add_file(str(path), name=path.name)
        session.run.log_artifact(artifact, aliases=[path.stem])

    @hookimpl
    def ganforge_run_finished(self, run_dir: Path, step: int) -> None:
        self._close()

    def _logs(self, step: int) -> bool:
        """False for a step below one W&B already has (logged again after a resume or a
        divergence rollback): W&B would drop the row, with a warning."""
        assert self._session is not None
        if step < self._session.floor:
            return False
        self._session.floor = step
        return True

    def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.run.finish()


def __getattr__(name: str) -> Any:
    """``plugin``, the entry point's object: a new :class:`WandbObserver` each time the
    loader asks, so each plugin manager observes with a state of its own."""
    if name == "plugin":
        return WandbObserver()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
