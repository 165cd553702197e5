"""``ganforge bench``: a recipe's training speed, against the plain DCGAN loop."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .app import app, reports_errors
from .shared import RecipeArgument, SetOption, load_plugins_or_warn, load_recipe_file


@app.command()
@reports_errors
def bench(
    recipe: Path = RecipeArgument,
    overrides: list[str] = SetOption,
    steps: int = typer.Option(20, "--steps", min=1, help="Timed steps per measurement."),
    warmup: int = typer.Option(5, "--warmup", min=1, help="Untimed steps first."),
    batch: list[int] = typer.Option(None, "--batch", "-b",
                                    help="Batch sizes (default: the recipe's)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="Also time the PyTorch example's plain loop "
                                       "(DCGAN recipes only)."),
    peak_tflops: float = typer.Option(None, "--peak-tflops", min=0.001,
                                      help="The device's peak TFLOP/s, for the roofline "
                                           "fraction (default: known GPUs' bf16 peak)."),
) -> None:
    """Images/s of a recipe's training step (data on the device and through its loader),
    peak memory, the ratio to the plain PyTorch DCGAN loop on the same images, and the
    step's counted FLOPs, TFLOP/s and fraction of the device's peak."""
    from ..benchmarking import bench_recipe, known_peak_tflops
    from ..training import resolve_device

    plugins = load_plugins_or_warn()
    resolved = load_recipe_file(recipe, overrides, plugins)
    rows = bench_recipe(resolved, plugins, steps, warmup, batch or None, baseline)
    run = resolved.run
    device = resolve_device(run.device)
    precision = "bf16" if rows[0].bf16 else "fp32"
    channels_last = "off" if run.channels_last is False else "on"
    table = Table(title=f"{recipe} on {device} (precision {run.precision}: {precision}, "
                        f"channels_last {channels_last}, compile {run.compile}, "
                        f"cuda_graphs {run.cuda_graphs}, graph {run.graph})")
    peak = peak_tflops or known_peak_tflops(device, rows[0].bf16)
    for column in ("batch", "ganforge img/s", "plain loop img/s", "ratio", "loader share",
                   "GFLOP/img", "TFLOP/s", "roofline", "peak memory", "launches/step",
                   "plain launches/step"):
        table.add_column(column, overflow="fold")  # never an ellipsis in a figure
    for row in rows:
        table.add_row(str(row.batch), f"{row.ganforge:.1f}",
                      "-" if row.plain is None else f"{row.plain:.1f}",
                      "-" if row.ratio is None else f"{row.ratio:.2f}x",
                      f"{100 * row.loader_share:.0f}%", f"{row.flops_per_image / 1e9:.3g}",
                      f"{row.tflops:.3g}", f"{100 * row.tflops / peak:.1f}%" if peak else "-",
                      row.peak_memory, str(row.launches or "-"),
                      str(row.plain_launches or "-"))
    Console().print(table)
