"""The sweep report: sample grids side by side and metric curves, as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .plan import SweepPlan
from .results import mean_std, read_metrics


def _latest_sample(run_dir: Path) -> Path | None:
    samples = sorted((run_dir / "samples").glob("step-*.png"))
    return samples[-1] if samples else None


def samples_sheet(plan: SweepPlan, out: Path, columns: int = 4) -> Path | None:
    """One PNG with each variant's last sample grid (first seed), labelled."""
    tiles: list[tuple[str, Image.Image]] = []
    for variant in plan.variants:
        run = next(r for r in plan.runs if r.variant == variant)
        path = _latest_sample(run.run_dir)
        if path is not None:
            with Image.open(path) as opened:
                tiles.append((f"{variant} (step {path.stem[5:].lstrip('0') or 0})",
                              opened.convert("RGB")))
    if not tiles:
        return None
    font = ImageFont.load_default()
    label_h = 18
    width = max(img.width for _, img in tiles)
    height = max(img.height for _, img in tiles) + label_h
    cols = min(columns, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (width + 8) + 8, rows * (height + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(tiles):
        x = 8 + (i % cols) * (width + 8)
        y = 8 + (i // cols) * (height + 8)
        draw.text((x, y + 2), label[: max(8, width // 6)], fill="black", font=font)
        sheet.paste(img, (x, y + label_h))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def curves_plot(plan: SweepPlan, out: Path, metrics: Sequence[str] | None = None) -> Path:
    """One PNG with a panel per figure (every evaluated metric, then the G and D losses):
    one line per variant, the mean over seeds, shaded one standard deviation either side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, dict[str, dict[int, list[float]]]] = {}
    for run in plan.runs:
        for line in read_metrics(run.run_dir):
            for key, value in line.items():
                if key.startswith("eval/") and key != "eval/seconds" or key in ("loss_g",
                                                                                 "loss_d"):
                    per_step = curves.setdefault(key, {}).setdefault(run.variant, {})
                    per_step.setdefault(line["step"], []).append(value)
    keys = list(metrics) if metrics else sorted(k for k in curves if k.startswith("eval/"))
    keys += [k for k in ("loss_g", "loss_d") if k in curves and k not in keys]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5 * max(1, len(keys)), 4),
                             squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        for variant in plan.variants:
            series = curves.get(key, {}).get(variant)
            if not series:
                continue
            steps = sorted(series)
            means = [sum(series[s]) / len(series[s]) for s in steps]
            ax.plot(steps, means, label=variant)
            if any(len(series[s]) > 1 for s in steps):
                spread = [mean_std(series[s])[1] for s in steps]
                ax.fill_between(steps, [m - d for m, d in zip(means, spread, strict=True)],
                                [m + d for m, d in zip(means, spread, strict=True)], alpha=0.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{plan.source.name}: mean over seeds (shaded: ± std)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
