"""The commands of ``ganforge``. Heavy imports (torch, plugins) happen inside each command
so that ``ganforge --help`` stays fast."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from ..core.errors import UsageError
from .app import app, reports_errors, stderr
from .shared import (
    ClassOption,
    DeviceOption,
    NoEmaOption,
    RecipeArgument,
    SetOption,
    load_plugins_or_warn,
    load_recipe_file,
)

if TYPE_CHECKING:
    from ..plugins import Plugins


@app.command()
@reports_errors
def run(
    recipe: Path = RecipeArgument,
    overrides: list[str] = SetOption,
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Run directory (default: run.out or runs/<recipe>)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the newest complete checkpoint in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Train a recipe; writes samples, metrics, TensorBoard logs and checkpoints."""
    from ..api.train import train

    result = train(recipe, load_plugins_or_warn(), overrides=overrides or [], out=out,
                   resume=resume, progress=not quiet)
    code = 128 + (result.stop_signal or signal.SIGINT) if result.interrupted else 0
    if os.environ.get("RANK", "0") != "0":
        raise typer.Exit(code)  # under torchrun, rank 0 reports; every rank exits alike
    console = stderr()
    status = (f"interrupted ({signal.Signals(result.stop_signal).name})"
              if result.interrupted and result.stop_signal else
              "interrupted" if result.interrupted else "finished")
    console.print(f"{status} at step {result.step}: {result.run_dir}", markup=False)
    if result.skipped_images:
        console.print(f"{result.skipped_images} bad images skipped; listed in "
                      f"{result.run_dir / 'skipped.jsonl'}", markup=False)
    if result.checkpoint:
        console.print(f"checkpoint: {result.checkpoint}", markup=False)
        console.print(f"samples:    {result.run_dir / 'samples'}", markup=False)
    if result.interrupted:
        console.print(f"resume with: {resume_command(recipe, overrides, result.run_dir)}",
                      markup=False)
        raise typer.Exit(code)


def resume_command(recipe: Path, overrides: list[str] | None, run_dir: Path) -> str:
    """The command line that continues an interrupted run: the same recipe and ``--set``
    options (without them the resume is refused as another recipe), each shell-quoted."""
    import shlex

    sets = [part for text in overrides or [] for part in ("--set", shlex.quote(text))]
    return " ".join(["ganforge run", shlex.quote(str(recipe)), *sets,
                     "--out", shlex.quote(str(run_dir)), "--resume"])


@app.command()
@reports_errors
def resolve(recipe: Path = RecipeArgument, overrides: list[str] = SetOption) -> None:
    """Print the fully resolved recipe (extends merged, overrides and defaults applied);
    the components' warnings about the recipe go to stderr."""
    plugins = load_plugins_or_warn()
    resolved = load_recipe_file(recipe, overrides, plugins)
    typer.echo(resolved.to_toml(), nl=False)
    for note in resolved.warnings:
        stderr().print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)


@app.command(context_settings={"ignore_unknown_options": False})
@reports_errors
def components(
    args: list[str] = typer.Argument(None, metavar="[KIND] | show KIND NAME",
                                     help="A kind to list, or 'show KIND NAME' for details."),
    pattern: str = typer.Option("*", "--pattern", "-p", help="Shell-style name filter."),
) -> None:
    """List registered components, or show one component's parameters."""
    from ..core.kinds import KINDS

    plugins = load_plugins_or_warn()
    args = args or []
    if args and args[0] == "show":
        if len(args) != 3:
            raise UsageError("usage: ganforge components show KIND NAME")
        _show_component(plugins, args[1], args[2])
        return
    if len(args) > 1:
        raise UsageError("usage: ganforge components [KIND] | components show KIND NAME")
    kinds = [args[0]] if args else list(KINDS)
    from rich.markup import escape

    table = Table(title="ganforge components")
    for column in ("kind", "name", "qualified name", "from", "summary"):
        table.add_column(column)
    for kind in kinds:
        usable = set(plugins.registry.names(kind))
        for entry in plugins.registry.list(kind, pattern):
            short = entry.name if entry.name in usable else "(ambiguous: qualify it)"
            table.add_row(kind, escape(short), escape(entry.qualified), escape(entry.origin),
                          escape(entry.summary))
    Console().print(table)


def _show_component(plugins: Plugins, kind: str, name: str) -> None:
    import inspect

    import attrs
    from rich.markup import escape

    from ..core.params import param_doc

    entry = plugins.registry.entry(kind, name)
    params_cls = entry.cls.Params
    attrs.resolve_types(params_cls)
    console = Console()
    console.print(f"[bold]{escape(kind)} {escape(repr(entry.qualified))}[/bold]  "
                  f"{escape(entry.cls.__module__)}.{escape(entry.cls.__qualname__)}  "
                  f"({escape(entry.origin)})")
    if entry.cls.__doc__:
        console.print(inspect.cleandoc(entry.cls.__doc__), highlight=False, markup=False)
    table = Table(title="Params")
    for column in ("name", "type", "default", "description"):
        table.add_column(column)
    for field in attrs.fields(params_cls):
        default: Any = field.default
        if hasattr(default, "factory"):  # an attrs.Factory: show what it makes
            default = default.factory()
        shown = "(required)" if default is attrs.NOTHING else repr(default)
        kind = field.type
        type_name = kind.__name__ if isinstance(kind, type) else str(kind)
        table.add_row(escape(field.name), escape(type_name.replace("typing.", "")),
                      escape(shown), escape(param_doc(field)))
    console.print(table)


@app.command()
@reports_errors
def plugins() -> None:
    """List plugins with their distribution, status and the components they registered."""
    from ..core.kinds import KINDS

    loaded = load_plugins_or_warn()
    counts: dict[str, int] = {}
    for kind in KINDS:
        for entry in loaded.registry.list(kind):
            counts[entry.origin] = counts.get(entry.origin, 0) + 1
    table = Table(title="ganforge plugins")
    for column in ("plugin", "distribution", "version", "status", "components", "error"):
        table.add_column(column)
    from rich.markup import escape

    for record in loaded.records:
        colour = {"loaded": "green", "failed": "red"}.get(record.status, "yellow")
        # Names, versions and errors come from plugins: text, never markup.
        table.add_row(escape(record.name), escape(record.distribution), escape(record.version),
                      f"[{colour}]{record.status}[/{colour}]",
                      str(counts.get(record.label, 0)), escape(record.error))
    Console().print(table)


@app.command()
@reports_errors
def check(recipe: Path = RecipeArgument, overrides: list[str] = SetOption) -> None:
    """Validate a recipe, build its networks and audit them against plugin guidelines."""
    from rich.markup import escape

    from ..api.check import check as check_recipe

    loaded = load_plugins_or_warn()
    found = check_recipe(load_recipe_file(recipe, overrides, loaded), plugins=loaded)
    resolved, console = found.recipe, Console()
    console.print(f"recipe ok: {escape(str(recipe))}")
    for line in found.shapes:
        console.print(line, markup=False, highlight=False)
    for note in found.warnings:
        console.print(f"warning: {note}", markup=False, highlight=False)
    for label, count in found.parameters.items():
        console.print(f"{label} {resolved[label].name!r}: {count:,} parameters", markup=False)
    for label in found.unaudited:
        console.print(f"no audit for this network: {label} {resolved[label].name!r}",
                      markup=False)
    if not found.audits:
        return
    # One table per ruleset, titled by the results' auditor (plugins that predate
    # AuditResult may return objects without one).
    for auditor in dict.fromkeys(getattr(r, "auditor", "") for r in found.audits):
        table = Table(title=f"{auditor} audit" if auditor else "audit")
        for column in ("network", "guideline", "result", "detail"):
            table.add_column(column)
        for r in found.audits:
            if getattr(r, "auditor", "") == auditor:
                verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
                table.add_row(escape(r.network), escape(r.guideline), verdict, escape(r.detail))
        console.print(table)
    console.print(f"{len(found.audits) - found.failed} passed, {found.failed} failed")


@app.command()
@reports_errors
def sample(
    checkpoint: Path = typer.Argument(..., show_default=False,
                                      help="A ganforge .safetensors checkpoint, or a folder "
                                           "written by ganforge export."),
    n: int = typer.Option(64, "--n", "-n", min=1, help="Number of images (at most 4096)."),
    out: str = typer.Option("samples.png", "--out", "-o",
                            help="Image file to write: .png, .jpg, .jpeg, .webp, .bmp, .tif "
                                 "or .tiff."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents, 0 to 2**63 - 1."),
    truncation: float | None = typer.Option(
        None, "--truncation", metavar="T",
        help="Truncation trick (BigGAN): latent entries with |z| > T are redrawn until "
             "|z| <= T; normal priors only."),
    class_: str | None = ClassOption,
    no_ema: bool = NoEmaOption,
    device: str = DeviceOption,
) -> None:
    """Write a grid of images from a checkpoint's generator, or from a folder written by
    ganforge export (needs nothing else).

    A conditional generator draws one row per class, the same latents in every row
    (``--class all``, the default), or N images of one class (``--class K``).
    ``--truncation T`` draws the latents under BigGAN's truncation trick."""
    from ..api.sample import sample as draw
    from ..sampling import check_count, check_output_path, check_seed, check_truncation
    from ..training import resolve_device

    # Every option is checked (and named as typed) before anything is loaded.
    target = check_output_path(out, "--out")
    check_count(n, "--n")
    check_seed(seed)
    check_truncation(truncation)
    resolve_device(device, "--device")
    drawn = draw(checkpoint, n, seed=seed, out=target, truncation=truncation, class_=class_,
                 ema=not no_ema, device=device, plugins=load_plugins_or_warn())
    which = " (EMA)" if drawn.is_ema else ""
    stderr().print(f"wrote {drawn.count} samples{drawn.what} from step {drawn.step}{which} "
                   f"to {target}", markup=False)
