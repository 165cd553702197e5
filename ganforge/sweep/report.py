"""The sweep report: sample grids side by side and metric curves, as PNG files (heat maps
of crossed axes: :mod:`.heatmap`). Variants are named by their short display names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from .labels import display_names, wrap_label
from .plan import SweepPlan
from .results import mean_std, read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Line styles that, with the colours, tell up to 40 variants apart.
_STYLES = ("-", "--", ":", "-.")


def _latest_sample(run_dir: Path) -> Path | None:
    samples = sorted((run_dir / "samples").glob("step-*.png"))
    return samples[-1] if samples else None


def samples_sheet(plan: SweepPlan, out: Path, columns: int = 4,
                  min_width: int = 140) -> Path | None:
    """One PNG with each variant's last sample grid (first seed) under its display name,
    wrapped onto as many lines as it needs (the label band grows to fit; no label is cut).
    Columns are at least ``min_width`` pixels wide."""
    names = display_names(plan)
    tiles: list[tuple[str, Image.Image]] = []
    for variant in plan.variants:
        run = next(r for r in plan.runs if r.variant == variant)
        path = _latest_sample(run.run_dir)
        if path is not None:
            with Image.open(path) as opened:
                tiles.append((f"{names[variant]} (step {path.stem[5:].lstrip('0') or 0})",
                              opened.convert("RGB")))
    if not tiles:
        return None
    font = ImageFont.load_default()
    width = max(min_width, *(img.width for _, img in tiles))
    wrapped = [wrap_label(label, width, font.getlength) for label, _ in tiles]
    line_h = _line_height(font)
    label_h = max(len(lines) for lines in wrapped) * line_h + 4
    height = max(img.height for _, img in tiles) + label_h
    cols = min(columns, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (width + 8) + 8, rows * (height + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, ((_, img), lines) in enumerate(zip(tiles, wrapped, strict=True)):
        x = 8 + (i % cols) * (width + 8)
        y = 8 + (i // cols) * (height + 8)
        for k, text in enumerate(lines):
            draw.text((x, y + 2 + k * line_h), text, fill="black", font=font)
        sheet.paste(img, (x, y + label_h))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _line_height(font: Any) -> int:
    left, top, right, bottom = font.getbbox("Ag_|=")
    return int(bottom - min(0, top)) + 3


def variant_styles(count: int) -> list[tuple[tuple[float, ...], str]]:
    """A (colour, line style) per variant, all pairs distinct and the colours themselves
    distinct up to 20 (tab10's dark, then tab20's light shades, dashed), and beyond 20 a
    colour map's evenly spaced colours with the line styles cycling."""
    from matplotlib import colormaps

    if count <= 10:
        return [(tuple(colormaps["tab10"](i)), "-") for i in range(count)]
    if count <= 20:
        tab20 = colormaps["tab20"]
        return [(tuple(tab20(2 * i)), "-") for i in range(10)] + [
            (tuple(tab20(2 * i + 1)), "--") for i in range(count - 10)]
    turbo = colormaps["turbo"]
    return [(tuple(turbo(0.05 + 0.9 * i / (count - 1))), _STYLES[i % len(_STYLES)])
            for i in range(count)]


def _curves(plan: SweepPlan) -> dict[str, dict[str, dict[int, list[float]]]]:
    curves: dict[str, dict[str, dict[int, list[float]]]] = {}
    for run in plan.runs:
        for line in read_metrics(run.run_dir):
            for key, value in line.items():
                if key.startswith("eval/") and key != "eval/seconds" or key in ("loss_g",
                                                                                 "loss_d"):
                    per_step = curves.setdefault(key, {}).setdefault(run.variant, {})
                    per_step.setdefault(line["step"], []).append(value)
    return curves


def curves_figure(plan: SweepPlan, metrics: Sequence[str] | None = None) -> Figure:
    """The curves figure: a panel per figure (every evaluated metric, then the G and D
    losses), one line per variant (the mean over seeds, shaded one standard deviation
    either side), and one legend of display names below the panels, outside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _curves(plan)
    names = display_names(plan)
    keys = list(metrics) if metrics else sorted(k for k in curves if k.startswith("eval/"))
    keys += [k for k in ("loss_g", "loss_d") if k in curves and k not in keys]
    panels = max(1, len(keys))
    longest = max((len(names[v]) for v in plan.variants), default=10)
    legend_cols = max(1, min(len(plan.variants), int(5 * panels * 12 / (longest + 6))))
    legend_rows = -(-len(plan.variants) // legend_cols)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4 + 0.22 * legend_rows),
                             squeeze=False, layout="constrained")
    styles = dict(zip(plan.variants, variant_styles(len(plan.variants)), strict=True))
    for ax, key in zip(axes[0], keys, strict=False):
        for variant in plan.variants:
            series = curves.get(key, {}).get(variant)
            if not series:
                continue
            colour, style = styles[variant]
            steps = sorted(series)
            means = [sum(series[s]) / len(series[s]) for s in steps]
            ax.plot(steps, means, color=colour, linestyle=style, label=names[variant],
                    marker="o" if len(steps) <= 5 else None, markersize=4)
            if any(len(series[s]) > 1 for s in steps):
                spread = [mean_std(series[s])[1] for s in steps]
                ax.fill_between(steps, [m - d for m, d in zip(means, spread, strict=True)],
                                [m + d for m, d in zip(means, spread, strict=True)],
                                color=colour, alpha=0.15)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=legend_cols, fontsize=8, frameon=False)
    fig.suptitle(f"{plan.source.name}: mean over seeds (shaded: ± std)")
    return fig


def curves_plot(plan: SweepPlan, out: Path, metrics: Sequence[str] | None = None) -> Path:
    """Write :func:`curves_figure` to ``out``."""
    import matplotlib.pyplot as plt

    fig = curves_figure(plan, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
