"""Collecting a sweep's results: one row per run, and mean/std per variant over seeds.

Writes ``results.csv`` and ``results.jsonl`` (one row per variant and seed), ``summary.csv``
(one row per variant) and ``summary.md`` (each metric's final value as mean +- std over
seeds, a Markdown table; variants by their display names, :mod:`.labels`) in the sweep
directory.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io.files import read_jsonl
from ..training.run_dir import RunDirectory
from .labels import display_names
from .plan import PlannedRun, SweepPlan

#: Figures read from the last logged step of every run.
TRAINING_FIGURES = ("loss_d", "loss_g", "images_per_s", "elapsed_s")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of a run's ``metrics.jsonl`` (empty if none; a torn last line, left by a
    run killed mid-write, is dropped)."""
    return read_jsonl(RunDirectory(run_dir).metrics).records


def _higher_is_better(run: PlannedRun, registry: Any, label: str) -> bool:
    choice = run.recipe.metrics.get(label)
    return bool(choice and registry.get("metric", choice.name).higher_is_better)


def run_row(run: PlannedRun, registry: Any) -> dict[str, Any]:
    """One result row: variant, seed, overrides, final training figures, final and best
    value of every evaluated metric."""
    lines = read_metrics(run.run_dir)
    training = [x for x in lines if "loss_d" in x]
    row: dict[str, Any] = {"variant": run.variant, "seed": run.seed,
                           "overrides": json.dumps(run.overrides, sort_keys=True),
                           "step": training[-1]["step"] if training else 0,
                           "done": (run.run_dir / "done.json").exists()}
    last = training[-1] if training else {}
    for name in TRAINING_FIGURES:
        row[name] = last.get(name)
    labels = sorted({k[5:] for x in lines for k in x if k.startswith("eval/")} - {"seconds"})
    for label in labels:
        values = [(x["step"], x[f"eval/{label}"]) for x in lines if f"eval/{label}" in x]
        pick = max if _higher_is_better(run, registry, label) else min
        row[f"{label}_final"] = values[-1][1]
        row[f"{label}_best"] = pick(v for _, v in values)
    return row


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation (n - 1; 0 for one value) of seeds' values."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: the number of seeds, and mean and std of every numeric column."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    summary = []
    for variant, group in by_variant.items():
        out: dict[str, Any] = {"variant": variant, "seeds": len(group),
                               "overrides": group[0]["overrides"]}
        numeric = [k for k, v in group[0].items()
                   if isinstance(v, int | float) and not isinstance(v, bool)
                   and k not in ("seed", "step")]
        for key in numeric:
            values = [r[key] for r in group if isinstance(r.get(key), int | float)]
            if values:
                out[f"{key}_mean"], out[f"{key}_std"] = mean_std([float(v) for v in values])
        summary.append(out)
    return summary


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def summary_markdown(summary: Sequence[Mapping[str, Any]],
                     names: Mapping[str, str] | None = None) -> str:
    """A Markdown table: one row per variant (named by ``names``, variant id -> display
    name, where given), each evaluated metric's final value as ``mean ± std`` over the
    variant's seeds (std of the seeds, n - 1)."""
    if not summary:
        return ""
    labels = [k[:-len("_final_mean")] for k in summary[0] if k.endswith("_final_mean")]
    lines = ["| variant | seeds | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for row in summary:
        cells = [f"{row[f'{label}_final_mean']:.4g} ± {row[f'{label}_final_std']:.2g}"
                 if f"{label}_final_mean" in row else "-" for label in labels]
        name = (names or {}).get(row["variant"], row["variant"])
        lines.append(f"| {name} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def collect(plan: SweepPlan, registry: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read every run and write results.csv, results.jsonl and summary.csv."""
    rows = [run_row(run, registry) for run in plan.runs if run.run_dir.exists()]
    summary = summarise(rows)
    plan.out.mkdir(parents=True, exist_ok=True)
    if rows:
        _write_csv(plan.out / "results.csv", rows)
        (plan.out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _write_csv(plan.out / "summary.csv", summary)
        (plan.out / "summary.md").write_text(summary_markdown(summary, display_names(plan)),
                                             encoding="utf-8")
    return rows, summary
