"""Heat maps of a crossed sweep: each evaluated metric's final value over two axes.

A grid sweep with two or more crossed axes (named variants count as one, ``variant``) gets
``heatmap-<metric>.png`` per evaluated metric: the axis with the most values down the
rows, the next across the columns, and one panel (small multiple) per combination of the
remaining axes -- the first of them across, the rest down. Each cell is coloured by the
mean over seeds of the metric's last evaluated value and reads ``mean ± std`` (std of the
seeds, n - 1), plus ``n=<seeds>`` where fewer seeds finished than elsewhere. All panels
share one colour scale.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .labels import axis_labels, variant_coordinates
from .plan import SweepPlan
from .results import mean_std, read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@attrs.frozen
class Grid:
    """One panel: the metric's mean, std and number of seeds per (row, column) cell; None
    (and 0 seeds) where no run of that cell has evaluated it."""

    rows: list[str]
    cols: list[str]
    mean: list[list[float | None]]
    std: list[list[float | None]]
    count: list[list[int]]


def final_values(plan: SweepPlan) -> dict[str, dict[str, list[float]]]:
    """Per evaluated metric, per variant: each run's (seed's) last evaluated value."""
    finals: dict[str, dict[str, list[float]]] = {}
    for run in plan.runs:
        last: dict[str, float] = {}
        for line in read_metrics(run.run_dir):
            last.update({k[5:]: v for k, v in line.items()
                         if k.startswith("eval/") and k != "eval/seconds"
                         and isinstance(v, int | float) and math.isfinite(v)})
        for metric, value in last.items():
            finals.setdefault(metric, {}).setdefault(run.variant, []).append(float(value))
    return finals


def crossed_axes(plan: SweepPlan) -> dict[str, list[str]]:
    """The sweep's crossed axes with their values (formatted), in recipe order; named
    variants are the axis ``variant``. Empty unless ``mode = "grid"`` crosses at least two
    axes that take two or more values each."""
    if plan.params.mode != "grid":
        return {}
    axes: dict[str, list[str]] = {}
    for place in variant_coordinates(plan).values():
        for axis, value in place.items():
            values = axes.setdefault(axis, [])
            if value not in values:
                values.append(value)
    axes = {axis: values for axis, values in axes.items() if len(values) > 1}
    return axes if len(axes) >= 2 else {}


def layout(axes: Mapping[str, Sequence[str]]) -> tuple[str, str, list[str]]:
    """The row axis (most values), the column axis (next most) and the facet axes (the
    rest, in recipe order)."""
    ranked = sorted(axes, key=lambda a: -len(axes[a]))
    row, col = ranked[0], ranked[1]
    return row, col, [a for a in axes if a not in (row, col)]


def metric_grid(coordinates: Mapping[str, Mapping[str, str]],
                values: Mapping[str, Sequence[float]], row_axis: str, col_axis: str,
                rows: Sequence[str], cols: Sequence[str],
                fixed: Mapping[str, str] | None = None) -> Grid:
    """The panel of the variants placed at ``fixed`` (axis -> value): each variant's seed
    values (``values``, per variant id) go to the cell of its row and column value
    (``coordinates``, per variant id); a cell's mean and std are over those values."""
    cells: dict[tuple[str, str], list[float]] = {}
    for variant, place in coordinates.items():
        if any(place.get(axis) != value for axis, value in (fixed or {}).items()):
            continue
        cell = (place.get(row_axis, ""), place.get(col_axis, ""))
        cells.setdefault(cell, []).extend(values.get(variant, ()))
    stats = {cell: mean_std(v) for cell, v in cells.items() if v}
    return Grid(list(rows), list(cols),
                [[stats[(r, c)][0] if (r, c) in stats else None for c in cols] for r in rows],
                [[stats[(r, c)][1] if (r, c) in stats else None for c in cols] for r in rows],
                [[len(cells.get((r, c), ())) for c in cols] for r in rows])


def facets(axes: Mapping[str, Sequence[str]], facet_axes: Sequence[str]
           ) -> list[list[dict[str, str]]]:
    """The panels' fixed values, as rows of panels: the first facet axis across, every
    combination of the others down (one panel, ``{}``, without facet axes)."""
    if not facet_axes:
        return [[{}]]
    across, down = facet_axes[0], list(facet_axes[1:])
    return [[{across: value, **dict(zip(down, combo, strict=True))} for value in axes[across]]
            for combo in itertools.product(*(axes[a] for a in down))]


def cell_text(mean: float | None, std: float | None, count: int, full: int) -> str:
    """What a cell reads: ``12.3\\n± 0.45``, with ``n=2`` under it when it has fewer seeds
    than the fullest cell, and ``-`` when it has none."""
    if mean is None:
        return "-"
    text = f"{mean:.3g}\n± {std or 0.0:.2g}"
    return text + f"\nn={count}" if count < full else text


def heatmap_figure(plan: SweepPlan, metric: str,
                   finals: Mapping[str, Sequence[float]]) -> Figure | None:
    """The heat map figure of ``metric`` (``finals``: per variant, the seeds' final
    values), or None when the sweep has fewer than two crossed axes."""
    axes = crossed_axes(plan)
    if not axes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = axis_labels(plan)
    coordinates = variant_coordinates(plan)
    row_axis, col_axis, facet_axes = layout(axes)
    panels = facets(axes, facet_axes)
    grids = [[metric_grid(coordinates, finals, row_axis, col_axis, axes[row_axis],
                          axes[col_axis], fixed) for fixed in line] for line in panels]
    known = [v for line in grids for g in line for r in g.mean for v in r if v is not None]
    full = max((n for line in grids for g in line for r in g.count for n in r), default=0)
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    n_rows, n_cols = len(axes[row_axis]), len(axes[col_axis])
    width = max(3.0, 1.0 + 0.22 * max(len(v) for v in axes[row_axis]) + 1.05 * n_cols)
    height = max(2.2, 1.2 + 0.62 * n_rows)
    fig, grid_axes = plt.subplots(len(panels), len(panels[0]), squeeze=False,
                                  figsize=(width * len(panels[0]) + 1.2,
                                           height * len(panels) + 0.6),
                                  layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = None
    for line, grid_line, ax_line in zip(panels, grids, grid_axes, strict=True):
        for fixed, grid, ax in zip(line, grid_line, ax_line, strict=True):
            data = [[math.nan if v is None else v for v in r] for r in grid.mean]
            image = ax.imshow(data, cmap=cmap, vmin=low, vmax=high, aspect="auto")
            for i, j in itertools.product(range(n_rows), range(n_cols)):
                mean = grid.mean[i][j]
                shade = 0.0 if mean is None or high == low else (mean - low) / (high - low)
                ax.text(j, i, cell_text(mean, grid.std[i][j], grid.count[i][j], full),
                        ha="center", va="center", fontsize=8,
                        color="white" if mean is not None and shade < 0.55 else "black")
            ax.set_xticks(range(n_cols), grid.cols, fontsize=8)
            ax.set_yticks(range(n_rows), grid.rows, fontsize=8)
            ax.set_xlabel(names.get(col_axis, col_axis))
            ax.set_ylabel(names.get(row_axis, row_axis))
            if fixed:
                ax.set_title("  ".join(f"{names.get(a, a)}={v}" for a, v in fixed.items()),
                             fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=grid_axes.ravel().tolist(), label=f"final {metric} (mean)",
                     shrink=0.9)
    fig.suptitle(f"{plan.source.stem}: final {metric}, mean ± std over seeds")
    return fig


def heatmap_plots(plan: SweepPlan, out_dir: Path) -> list[Path]:
    """Write ``heatmap-<metric>.png`` in ``out_dir`` for every evaluated metric of a sweep
    with two or more crossed axes; the files written (none for other sweeps)."""
    if not crossed_axes(plan):
        return []
    import matplotlib.pyplot as plt

    written = []
    for metric, finals in sorted(final_values(plan).items()):
        fig = heatmap_figure(plan, metric, finals)
        if fig is None:
            continue
        out = out_dir / f"heatmap-{re.sub(r'[^A-Za-z0-9_.=-]', '-', metric)}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written
