"""``check_hooks``: a plugin's settings and observer hooks through a short real run.

The run is the training check's tiny one (:data:`~ganforge.testing.training.BASE_RECIPE`:
the kit's MLP networks on 16x16 ``synthetic`` images, on the CPU, in a temporary folder),
with logs, a sample grid and checkpoints due, so every observer hook is called at least
once, with the arguments a real run passes (the resolved recipe table included). Only the
plugin under test is called; a hook that raises is recorded (as a run would disable the
plugin at that point) and the check fails naming the plugin and the hook.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from ..plugins import Plugins
from .loading import RegistryLike, as_plugins, load_plugin
from .networks import partners_registered
from .report import ContractReport, Runner, SkipCheck, fail, one_line
from .training import training_table, work_dir

#: The hooks a training run broadcasts, in the order a run first calls them.
OBSERVER_HOOKS: tuple[str, ...] = ("ganforge_run_started", "ganforge_log",
                                   "ganforge_checkpoint_saved", "ganforge_sample_written",
                                   "ganforge_run_finished")


@attrs.define
class _Observed(Plugins):
    """The loaded plugins, whose broadcast calls ``plugin``'s observer hooks alone and
    records what each raised (nothing is unregistered: the caller's plugins stay as they
    were)."""

    plugin: str = ""
    calls: dict[str, int] = attrs.field(factory=dict)
    raised: dict[str, str] = attrs.field(factory=dict)

    def broadcast(self, hook_name: str, strict: bool | None = None,
                  warn: Any = None, **kwargs: Any) -> list[Any]:
        results = []
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            if impl.plugin_name != self.plugin or hook_name in self.raised:
                continue  # after a failure, a run would not call the plugin again
            self.calls[hook_name] = self.calls.get(hook_name, 0) + 1
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                self.raised[hook_name] = _raised(error, kwargs)
                continue
            if result is not None:
                results.append(result)
        return results


def _raised(error: BaseException, kwargs: Mapping[str, Any]) -> str:
    """``raised Type: message (file:line)``, the line the innermost frame raised at, and
    the step it was called at."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    step = f" (step {kwargs['step']})" if "step" in kwargs else ""
    return f"raised {one_line(error)}{where}{step}"


def _settings_defaults(plugins: Plugins, plugin: str) -> None:
    """A plugin's settings class builds from its defaults alone: a recipe without a
    ``[plugins.<plugin>]`` table gives the plugin its defaults."""
    from ..core.errors import RecipeError
    from ..core.structuring import structure_params

    settings = plugins.registry.settings.get(plugin)
    if settings is None:
        raise SkipCheck("registers no settings")
    try:
        structure_params(settings, {}, f"$.plugins.{plugin}")
    except RecipeError as error:
        where, why = error.problems[0] if error.problems else ("", str(error))
        raise fail(f"{settings.__name__} does not build from its defaults ({where}: {why}); "
                   f"a recipe without a [plugins.{plugin}] table gives the plugin its "
                   "defaults, so give every field one") from error


def check_hooks(plugin: str, module: ModuleType | str | None = None, *,
                registry: RegistryLike = None,
                recipe: Mapping[str, Any] | str | Path | None = None,
                overrides: Iterable[str] = (), steps: int = 4,
                run_dir: str | Path | None = None) -> ContractReport:
    """Check plugin ``plugin``'s settings and observer hooks: its settings class (if any)
    builds from its defaults, and a short real run (``steps`` steps of the training
    check's tiny recipe, ``recipe`` and ``overrides`` merged over it as in
    :func:`check_training`; no ``[plugins.<plugin>]`` table unless ``recipe`` sets one)
    calls each of its observer hooks (:data:`OBSERVER_HOOKS`) without an exception.

    ``module``: the module holding the hooks (loaded with :func:`load_plugin`, installed
    or not); without it, ``registry`` must be a :class:`~ganforge.plugins.Plugins` that
    loaded the plugin (or None: the installed plugins). Raises one ``AssertionError``
    with a line ``plugin '<plugin>' [<hook>]: raised ...`` per hook that raised; returns
    the :class:`ContractReport` (``details["calls"]``: how often each hook ran)."""
    from ..recipe.model import build_recipe
    from ..training import train

    if steps < 2:
        raise ValueError(f"steps must be at least 2 (a log and a checkpoint before the end): "
                         f"{steps}")
    plugins = load_plugin(plugin, module) if module is not None else as_plugins(registry)
    if plugins.manager.get_plugin(plugin) is None:
        loaded = ", ".join(sorted(r.name for r in plugins.records)) or "none"
        raise fail(f"plugin {plugin!r} is not loaded here (plugins loaded: {loaded}); pass "
                   "its module, check_hooks(name, 'package.module'), or registry=load_plugin"
                   "(name, module)")
    report = ContractReport("plugin", plugin)
    Runner(report).run("settings", _settings_defaults, plugins, plugin)
    hooks = [h for h in OBSERVER_HOOKS
             if any(i.plugin_name == plugin
                    for i in getattr(plugins.manager.hook, h).get_hookimpls())]
    if not hooks:
        report.skipped["hooks"] = "implements no observer hook"
        return report.raise_for_failures()
    observed = _Observed(manager=plugins.manager, registry=plugins.registry,
                         records=plugins.records, plugin=plugin)
    table = training_table(recipe, overrides, steps, resume_at=steps // 2)
    with work_dir(run_dir) as root, partners_registered(plugins.registry):
        resolved = build_recipe(table, plugins.registry, source="check_hooks")
        train(resolved, observed, root / "hooks", progress=False)
    for hook in hooks:
        if hook in observed.raised:
            report.failures[hook] = (f"{observed.raised[hook]}; in a run the plugin is "
                                     "disabled for the rest of the run at this point")
        elif hook not in observed.calls:
            report.failures[hook] = f"a {steps}-step run never called it"
        else:
            report.passed.append(hook)
    report.details["calls"] = ", ".join(f"{h} x{observed.calls[h]}" for h in hooks
                                        if h in observed.calls)
    return report.raise_for_failures()

