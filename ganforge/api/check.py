"""``ganforge.check``: validate a recipe, build its networks and audit them (what
``ganforge check`` does), with no data read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .common import plugins_or_installed, recipe_from

if TYPE_CHECKING:
    from ..core.audit import AuditResult
    from ..plugins import Plugins
    from ..recipe import Recipe


@attrs.frozen
class CheckResult:
    """What :func:`check` found: the resolved recipe, one line per network saying which
    images it makes or takes, the recipe's warnings, each network's parameter count, the
    plugins' audit results, and the networks no plugin audits."""

    recipe: Recipe
    shapes: tuple[str, ...]
    warnings: tuple[str, ...]
    parameters: dict[str, int]
    audits: tuple[AuditResult, ...]
    unaudited: tuple[str, ...]

    @property
    def failed(self) -> int:
        """How many audit rules failed."""
        return sum(not r.passed for r in self.audits)


def check(recipe: str | Path | Recipe | Mapping[str, Any], *, overrides: Sequence[str] = (),
          plugins: Plugins | None = None) -> CheckResult:
    """Validate ``recipe``, build everything but the data (networks, loss, optimizers,
    schedules, EMA) on the CPU, run G and D once to check that G's images are what the
    dataset and D take (a :class:`~ganforge.errors.UsageError` line naming both shapes if
    not), count parameters and collect the plugins' audits (``ganforge_check``)."""
    from ..training import assemble
    from ..training.shape_check import check_network_shapes

    plugins = plugins_or_installed(plugins)
    resolved = recipe_from(recipe, plugins, overrides)
    experiment = assemble(resolved, plugins.registry, "cpu", training=False,
                          parts={"generator", "discriminator", "loss", "optimizers"})
    generator, discriminator = experiment.generator, experiment.discriminator
    assert generator is not None and discriminator is not None
    shapes = check_network_shapes(resolved, plugins.registry, (generator, discriminator))
    counts = {label: sum(p.numel() for p in module.parameters())
              for label, module in (("generator", generator), ("discriminator", discriminator))}
    audits = tuple(r for batch in plugins.broadcast(
        "ganforge_check", generator=generator, discriminator=discriminator,
        experiment=experiment, recipe=resolved) for r in batch)
    unaudited = tuple(label for label in ("generator", "discriminator")
                      if not any(r.network == label for r in audits))
    return CheckResult(resolved, tuple(shapes.lines(resolved["generator"].name,
                                                    resolved["discriminator"].name)),
                       tuple(resolved.warnings), counts, audits, unaudited)
