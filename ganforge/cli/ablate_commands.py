"""``ganforge ablate``: run every variant of a sweep recipe and summarise them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ..core.errors import TrainingError
from .app import app, reports_errors, stderr
from .shared import RecipeArgument, SetOption, load_plugins_or_warn


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list | dict | bool) or value is None \
        else str(value)


@app.command()
@reports_errors
def ablate(
    recipe: Path = RecipeArgument,
    overrides: list[str] = SetOption,
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Sweep directory (default: runs/<recipe name>)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="List the variants and their differences; run nothing."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1,
                             help="Variants run in parallel (one per GPU when there are "
                                  "several; CPU processes otherwise)."),
    report: bool = typer.Option(False, "--report",
                                help="Also write samples.png, curves.png and (two or more "
                                     "crossed axes) heatmap-<metric>.png in the sweep "
                                     "directory."),
) -> None:
    """Run every variant of a sweep recipe ([sweep] table); resumable: run it again to
    finish an interrupted sweep without redoing finished variants."""
    from rich.markup import escape

    from ..api.ablate import ablate as run_sweep
    from ..api.ablate import plan as plan_sweep
    from ..sweep.labels import display_names

    plugins = load_plugins_or_warn()
    console = Console()
    if not console.is_terminal:  # logs and files: do not squeeze the tables into 80 columns
        console = Console(width=160)
    if dry_run:
        _print_plan(console, recipe, plan_sweep(recipe, overrides=overrides or [], out=out,
                                                plugins=plugins))
        return
    err = stderr()

    def on_run(outcome: Any, done: int, total: int) -> None:
        colour = {"finished": "green", "skipped": "cyan", "failed": "red"}[outcome.status]
        extra = f" in {outcome.seconds:.0f} s" if outcome.seconds else ""
        extra += f": {outcome.error}" if outcome.error else ""
        err.print(f"{escape(f'[{done}/{total}]')} [{colour}]{outcome.status}[/{colour}] "
                  f"{escape(f'{outcome.variant} seed {outcome.seed}{extra}')}", markup=True)

    result = run_sweep(recipe, overrides=overrides or [], out=out, jobs=jobs, report=report,
                       on_run=on_run, plugins=plugins,
                       on_plan=lambda plan: err.print(
                           f"ablate: {len(plan.runs)} runs ({len(plan.variants)} variants) in "
                           f"{plan.out}, {jobs} at a time", markup=False))
    _print_summary(console, result.summary, display_names(result.plan))
    out_dir = result.plan.out
    console.print(f"results: {out_dir / 'results.csv'}, {out_dir / 'results.jsonl'}, "
                  f"{out_dir / 'summary.csv'}", markup=False)
    if report:
        shown = [p for p in result.files if p.name in ("samples.png", "curves.png")
                 or p.name.startswith("heatmap")]
        console.print(f"report: {', '.join(str(p) for p in shown)}", markup=False)
    if result.failed:
        raise TrainingError(f"{len(result.failed)} of {len(result.outcomes)} runs failed; run "
                            "the same command again to retry them")


def _print_plan(console: Console, recipe: Path, plan: Any) -> None:
    from ..sweep.labels import display_names
    from ..sweep.plan import differences
    from ..sweep.runner import run_state

    names = display_names(plan)
    table = Table(title=f"{recipe}: {len(plan.variants)} variants x "
                        f"{len(plan.runs) // max(1, len(plan.variants))} seeds -> {plan.out}")
    for column in ("variant", "seeds", "state", "differences from the base"):
        table.add_column(column)
    for variant in plan.variants:
        runs = [r for r in plan.runs if r.variant == variant]
        diff = differences(plan.base, runs[0].recipe)
        text = "\n".join(f"{k}: {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in diff.items())
        states = ", ".join(sorted({run_state(r) for r in runs}))
        # The short name first; the id (the runs' folder name) under it when it differs.
        shown = variant if names.get(variant, variant) == variant \
            else f"{names[variant]}\n({variant})"
        table.add_row(shown, ", ".join(str(r.seed) for r in runs), states,
                      text or "(the base)")
    console.print(table)


def _print_summary(console: Console, summary: list[dict[str, Any]],
                   names: dict[str, str] | None = None) -> None:
    """The summary table, variants by their short display names (``names``)."""
    if not summary:
        return
    keys = [k[:-5] for k in summary[0] if k.endswith("_mean")]
    shown = [k for k in keys if k.endswith(("_final", "_best"))] + [
        k for k in ("loss_d", "loss_g", "images_per_s", "elapsed_s") if k in keys]
    table = Table(title="ablation summary (mean ± std over seeds)")
    table.add_column("variant")
    table.add_column("seeds")
    for key in shown:
        table.add_column(key)
    for row in summary:
        table.add_row((names or {}).get(row["variant"], row["variant"]), str(row["seeds"]), *(
            f"{row[f'{k}_mean']:.4g} ± {row[f'{k}_std']:.2g}" if f"{k}_mean" in row else "-"
            for k in shown))
    console.print(table)
