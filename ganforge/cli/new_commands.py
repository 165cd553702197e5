"""``ganforge new plugin NAME``: write a ready plugin distribution to start from."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ..core.errors import UsageError
from .app import app, reports_errors, stderr

new_app = typer.Typer(help="Start something new from a template.", no_args_is_help=True)
app.add_typer(new_app, name="new")


@new_app.command("plugin")
@reports_errors
def plugin(
    name: str = typer.Argument(..., metavar="NAME", show_default=False,
                               help="The plugin's name: a lower-case identifier (components "
                               "are NAME:<component>, the package ganforge_NAME)."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="The folder to create (default: ./ganforge-NAME); "
                                    "it must not exist, or be empty."),
    kinds: str | None = typer.Option(
        None, "--kinds", "-k",
        help="Comma-separated kinds to write one example of: generator, discriminator, loss, "
             "optimizer, scheduler, regularizer, augment, dataset, extractor (default: "
             "generator,discriminator,loss)."),
) -> None:
    """Write a new plugin distribution to start from.

    It holds pyproject.toml with the ganforge entry point, the package with one working
    component of each kind asked for, the plugin's settings table and an observer hook, a
    recipe, contract tests (ganforge.testing) and a README, from the template shipped in
    ganforge/templates/plugin/. Nothing is installed."""
    from .plugin_template import name_problem, parse_kinds, render

    problem = name_problem(name) or taken_problem(name)
    if problem:
        raise UsageError(problem)
    try:
        chosen = parse_kinds(kinds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    target = out if out is not None else Path(f"ganforge-{name}")
    refuse_existing(target)
    files = render(name, chosen)
    write_tree(target, files)
    typer.echo(f"wrote {target}/ ({len(files)} files): plugin {name!r} with "
               + ", ".join(f"{kind} {name}:{short}" for kind, short in _components(chosen)))
    stderr().print(f"next: cd {target} && python -m pytest   (then pip install -e . to use "
                   f"it in recipes as {name}:<component>)", markup=False)


def taken_problem(name: str) -> str | None:
    """Why ``name`` is taken (one line): it names a plugin that ships with ganforge, an
    installed plugin's entry point, or an installed distribution (``ganforge-NAME``); None
    when it is free. A copy under a taken name would shadow that plugin, or be shadowed."""
    from importlib import metadata

    from ..core.registry import SHIPPED_DISTRIBUTIONS

    dist = f"ganforge-{name}"
    if dist in SHIPPED_DISTRIBUTIONS:
        return (f"plugin name {name!r} is taken by the plugin shipped with ganforge ({dist}); "
                "choose another")
    try:
        entry_points = list(metadata.entry_points(group="ganforge"))
    except Exception:  # broken metadata of some distribution: nothing known to be taken
        entry_points = []
    for ep in entry_points:
        if ep.name == name:
            owner = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
            owner = owner if owner.isprintable() else ""  # untrusted metadata: one line
            return (f"plugin name {name!r} is taken by an installed plugin{owner}; choose "
                    "another")
    try:
        installed = metadata.distribution(dist)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return (f"plugin name {name!r} is taken: distribution {dist} {installed.version} is "
            "installed; choose another")


def _components(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    from .plugin_template import COMPONENTS

    return [(kind, COMPONENTS[kind][2]) for kind in kinds]


def refuse_existing(target: Path) -> None:
    """Refuse a target that exists, unless it is an empty folder (one line)."""
    if target.is_dir():
        try:
            empty = not any(target.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot read {target}: {exc.strerror or exc}") from None
        if not empty:
            raise UsageError(f"{target} already exists and is not empty; choose another "
                             "--out (nothing was written)")
    elif target.exists() or target.is_symlink():
        raise UsageError(f"{target} already exists and is not a folder; choose another --out")


def write_tree(target: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative path -> text) under ``target``; an OS error is one line,
    and a folder this call created is removed again."""
    created = not target.exists()
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # never overwrite
                handle.write(text)
    except OSError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise UsageError(f"cannot write the plugin to {target}: {exc.strerror or exc}"
                         f" ({exc.filename})" if exc.filename else
                         f"cannot write the plugin to {target}: {exc}") from None
