"""``ganforge data prepare`` and ``ganforge data inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from .app import app, reports_errors, stderr
from .shared import SetOption, load_plugins_or_warn

if TYPE_CHECKING:
    from ..plugins import Plugins

data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

SourceArgument = typer.Argument(..., metavar="RECIPE_OR_DATASET", show_default=False,
                                help="A recipe file (its [dataset] table) or a dataset name.")


def dataset_source(source: str, overrides: list[str] | None,
                   plugins: Plugins) -> tuple[dict[str, Any], int]:
    """The dataset table ``{"use": name, **params}`` (validated) and the recipe's seed
    (:func:`ganforge.training.building.dataset_source`).

    With a recipe, ``--set`` takes recipe paths (``dataset.image_size=64``); with a dataset
    name, it takes that dataset's params (``image_size=64``).
    """
    from ..training.building import dataset_source as resolve_source

    return resolve_source(source, overrides, plugins.registry)


def _build(table: dict[str, Any], plugins: Plugins) -> Any:
    from ..training.building import build_dataset

    return build_dataset(table, plugins.registry)


@data_app.command("prepare")
@reports_errors
def prepare(
    source: str = SourceArgument,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the prepared shards."),
    overrides: list[str] = SetOption,
    workers: int | None = typer.Option(None, "--workers", "-j",
                                       help="Decoding processes (default: all cores)."),
    shard_size: int = typer.Option(4096, "--shard-size", min=1, help="Images per shard."),
) -> None:
    """Decode a dataset once into uint8 shards (resumable; use 'prepared' to read them)."""
    from ..datasets.prepared import prepare_dataset
    from ..datasets.worker_signals import stop_signals_interrupt

    plugins = load_plugins_or_warn()
    table, _seed = dataset_source(source, overrides, plugins)
    dataset = _build(table, plugins)
    # Ctrl-C or SIGTERM: finished shards stay (a rerun resumes), one line, exit 130/143.
    with stop_signals_interrupt() as stop:
        report = prepare_dataset(dataset, table, out, shard_size=shard_size,
                                 workers=workers, stop=stop)
    spec = dataset.image_spec
    console = stderr()
    labelled = f", {spec.classes} classes" if spec.classes else ""
    console.print(f"prepared {report.count} images ({spec.channels}x{spec.pixels()}"
                  f"{labelled}) in {report.seconds:.1f} s: {report.shards_written} shards "
                  f"written, {report.shards_reused} reused, {report.skipped} skipped")
    classes = f", classes = {spec.classes}" if spec.classes else ""
    width = "" if spec.square else f", width = {spec.width}"
    console.print(f"use it with: [dataset] use = \"prepared\", root = \"{out}\", "
                  f"image_size = {spec.size}{width}, channels = {spec.channels}{classes}",
                  markup=False, highlight=False)


@data_app.command("inspect")
@reports_errors
def inspect(
    source: str = SourceArgument,
    overrides: list[str] = SetOption,
    scan: int = typer.Option(1000, "--scan", min=0,
                             help="Decode this many images looking for errors (0: all)."),
    out: Path = typer.Option(Path("real.png"), "--out", "-o",
                             help="PNG grid of real images as the trainer sees them."),
    n: int = typer.Option(64, "--n", min=1, help="Images in the grid."),
) -> None:
    """Count images, find decode errors, and write a grid of real training images."""
    from ..datasets.inspection import first_real_images, scan_dataset
    from ..sampling import image_grid, write_grid

    plugins = load_plugins_or_warn()
    table, seed = dataset_source(source, overrides, plugins)
    dataset = _build(table, plugins)
    report = scan_dataset(dataset, scan)
    console = Console()
    spec = dataset.image_spec
    labelled = f", {spec.classes} classes" if spec.classes else ", unlabelled"
    console.print(f"dataset {table['use']!r}: {report.count} images, "
                  f"{spec.channels}x{spec.pixels()}{labelled}")
    console.print(f"decoded {report.scanned}: {len(report.bad)} bad")
    if report.class_counts:
        counts = report.class_counts
        empty = [str(k) for k, c in enumerate(counts) if c == 0]
        line = (f"images per class among the decoded: {min(counts)} to {max(counts)}")
        if empty:
            line += f"; none of class {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}"
        console.print(line)
    folders = getattr(dataset, "class_folders", None)
    if not spec.classes and folders is not None:
        names = folders()
        if names:
            shown = ", ".join(f'"{n}"' for n in names[:50])
            console.print(f"sub-folders holding images: {len(names)}; label by folder with "
                          f"[dataset] classes = [{shown}{', ...' if len(names) > 50 else ''}]",
                          markup=False, highlight=False)
    if report.bad:
        bad = Table("image", "problem", title="bad images")
        for key, reason in report.bad[:20]:
            bad.add_row(key, reason)
        console.print(bad)
        if len(report.bad) > 20:
            console.print(f"... and {len(report.bad) - 20} more")
    images = first_real_images(dataset, n, seed)
    write_grid(image_grid(images), out)
    console.print(f"wrote {images.shape[0]} real images to {out}")
