"""``ganforge.ablate``: every variant of a sweep recipe, run and summarised (what
``ganforge ablate`` does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .common import plugins_or_installed

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..sweep.plan import SweepPlan
    from ..sweep.runner import RunOutcome

#: Told of each run as it ends: its outcome, how many are done, how many in all.
OnRun = Callable[["RunOutcome", int, int], None]


@attrs.frozen
class AblationResult:
    """What :func:`ablate` did: the plan (variants, runs, sweep directory), the outcome of
    each run of this call, the per-run rows and the per-variant summary (mean and std over
    seeds), and the files written."""

    plan: SweepPlan
    outcomes: list[RunOutcome]
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    files: tuple[Path, ...]

    @property
    def failed(self) -> list[RunOutcome]:
        """The runs that failed (run the same call again to retry them)."""
        return [o for o in self.outcomes if o.status == "failed"]


def plan(recipe: str | Path, *, overrides: Sequence[str] = (), out: str | Path | None = None,
         plugins: Plugins | None = None) -> SweepPlan:
    """The variants and runs of a sweep recipe (its ``[sweep]`` table), validated: every
    problem of every variant at once. Runs nothing."""
    from ..sweep.plan import plan_sweep

    return plan_sweep(recipe, plugins_or_installed(plugins).registry, list(overrides),
                      Path(out) if out is not None else None)


def ablate(recipe: str | Path, *, overrides: Sequence[str] = (), out: str | Path | None = None,
           jobs: int = 1, report: bool = False, on_run: OnRun | None = None,
           on_plan: Callable[[SweepPlan], None] | None = None,
           plugins: Plugins | None = None) -> AblationResult:
    """Run every unfinished run of the sweep recipe ``recipe`` (``jobs`` at a time: one per
    GPU when there are several, CPU processes otherwise) in ``out`` (default
    ``runs/<recipe name>``), then write results.csv, results.jsonl, summary.csv and
    summary.md there, and with ``report`` samples.png, curves.png and, for two or more
    crossed axes, heatmap-<metric>.png (final values over the axes). Resumable: calling it
    again finishes an interrupted sweep without redoing finished runs. Failed runs are in
    ``result.failed``; problems with the recipe raise :class:`~ganforge.core.errors.RecipeError`.
    ``on_plan`` is told the plan before the first run starts, ``on_run`` of each run as it
    ends."""
    from ..core.errors import UsageError
    from ..sweep.heatmap import heatmap_plots
    from ..sweep.report import curves_plot, samples_sheet
    from ..sweep.results import collect
    from ..sweep.runner import run_plan

    if jobs < 1:
        raise UsageError(f"jobs = {jobs}: run at least 1 variant at a time")
    plugins = plugins_or_installed(plugins)
    sweep = plan(recipe, overrides=overrides, out=out, plugins=plugins)
    if on_plan is not None:
        on_plan(sweep)
    outcomes = run_plan(sweep, jobs, on_run,
                        source={"recipe": str(recipe), "overrides": list(overrides)})
    rows, summary = collect(sweep, plugins.registry)
    files = [sweep.out / name for name in ("results.csv", "results.jsonl", "summary.csv",
                                            "summary.md") if (sweep.out / name).exists()]
    if report:
        sheet = samples_sheet(sweep, sweep.out / "samples.png")
        files += [p for p in (sheet, curves_plot(sweep, sweep.out / "curves.png")) if p]
        files += heatmap_plots(sweep, sweep.out)
    return AblationResult(sweep, outcomes, rows, summary, tuple(files))
