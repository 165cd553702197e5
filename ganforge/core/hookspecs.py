"""Hook specifications: the reference for plugin authors.

A plugin is a module (found through the ``ganforge`` entry-point group) that implements
some of these functions, decorated with :data:`ganforge.hookimpl`. Only
``ganforge_register`` is needed to add components; the others observe runs. The trainer
broadcasts the observer hooks from a built-in callback
(:class:`~ganforge.training.callbacks.ObserverBroadcast`); code that keeps state or steers
a run is a :class:`~ganforge.core.callback.Callback` instead (``docs/callbacks.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from .audit import AuditResult

hookspec = pluggy.HookspecMarker("ganforge")
hookimpl = pluggy.HookimplMarker("ganforge")


@hookspec
def ganforge_register(registry: Any) -> None:
    """Register components: call ``registry.register(kind, name, cls)`` for each one.

    Called once per process for every plugin, built-ins included. An exception raised here
    is reported with the plugin's name and distribution, and the plugin's registrations
    are withdrawn.
    """


@hookspec
def ganforge_check(generator: Any, discriminator: Any, experiment: Any,
                   recipe: Any) -> list[AuditResult] | None:
    """Audit a built generator/discriminator pair for ``ganforge check``.

    ``experiment`` is the assembled :class:`~ganforge.training.assembly.Experiment` (G, D,
    loss, optimizers, schedules; no dataset, on the CPU) and ``recipe`` the resolved
    :class:`~ganforge.recipe.Recipe`. An implementation takes only the arguments it names
    (pluggy), so one written for ``(generator, discriminator)`` keeps working.

    Return one :class:`ganforge.AuditResult` per rule and network judged (``network`` is
    ``"generator"`` or ``"discriminator"``; ``auditor`` names the ruleset and titles its
    table), or ``None`` (or an empty list) for networks the plugin does not know: judge only
    your own. A network no plugin judges is reported as "no audit for this network".
    """


@hookspec
def ganforge_run_started(run_dir: Path, recipe: dict[str, Any], step: int) -> None:
    """A training run starts (or resumes) at ``step`` in ``run_dir``."""


@hookspec
def ganforge_log(step: int, metrics: dict[str, float]) -> None:
    """Metrics were read back from the device at ``step`` (every ``log_every`` steps)."""


@hookspec
def ganforge_sample_written(step: int, path: Path) -> None:
    """A sample grid from the fixed latent batch was written to ``path``."""


@hookspec
def ganforge_checkpoint_saved(step: int, path: Path) -> None:
    """A complete checkpoint was written to ``path``."""


@hookspec
def ganforge_run_finished(run_dir: Path, step: int) -> None:
    """A training run ended normally at ``step``."""
