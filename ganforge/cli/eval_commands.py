"""``ganforge eval`` and ``ganforge probe``: scoring checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .app import app, reports_errors
from .commands import SetOption, _plugins


@app.command("eval")
@reports_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A ganforge .safetensors checkpoint."),
    metric: list[str] = typer.Option(["fid"], "--metric", "-m",
                                     help="Registered metric(s): fid, kid, inception_score."),
    n: int | None = typer.Option(None, "--n", min=2, help="Generated images (n_fake)."),
    n_real: int | None = typer.Option(None, "--n-real", min=2, help="Real images."),
    extractor: str | None = typer.Option(None, "--extractor",
                                         help="inception (default) or pixels (smoke tests)."),
    weights: Path | None = typer.Option(None, "--inception-weights",
                                        help="Path of pt_inception-2015-12-05-6726825d.pth."),
    download: bool = typer.Option(False, "--download",
                                  help="Fetch the Inception weights into the cache if missing."),
    overrides: list[str] = SetOption,
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per metric."),
) -> None:
    """Score a checkpoint's generator; every score is printed with its protocol.

    The real images come from the checkpoint's own recipe; point it at the data with
    --set dataset.root=PATH when the data moved.
    """
    import tomllib

    from ..evaluation.evaluator import Evaluator
    from ..recipe import apply_overrides, build_recipe
    from ..training import read_checkpoint, resolve_device
    from ..training.inference import load_generator

    plugins = _plugins()
    dev = resolve_device(device)
    generator, recipe, step = load_generator(checkpoint, plugins.registry, dev)
    if overrides:
        table = apply_overrides(tomllib.loads(read_checkpoint(checkpoint).recipe_toml),
                                overrides)
        recipe = build_recipe(table, plugins.registry, source=f"{checkpoint} + --set")
    dataset = recipe["dataset"].create(plugins.registry)
    params: dict[str, object] = {}
    for key, value in (("n_fake", n), ("n_real", n_real), ("extractor", extractor),
                       ("inception_weights", str(weights) if weights else None)):
        if value is not None:
            params[key] = value
    if download:
        params["download"] = True
    metrics = {name: (name, plugins.registry.create("metric", name, params)) for name in metric}
    evaluator = Evaluator(metrics, dataset, recipe["dataset"].to_table(), dev)
    results = evaluator.run(generator, step)
    console = Console()
    if as_json:
        for r in results:
            console.print_json(json.dumps({"metric": r.label, "value": r.value, **r.extra,
                                           "protocol": r.protocol}))
        return
    table = Table(title=f"{checkpoint} (step {step})")
    for column in ("metric", "value", "fake", "real", "extractor", "resize", "seconds"):
        table.add_column(column)
    for r in results:
        p = r.protocol
        extra = "".join(f" ± {v:.4g}" for k, v in r.extra.items() if k == "std")
        table.add_row(r.label, f"{r.value:.4f}{extra}", str(p["n_fake"]),
                      str(p["n_real"] or "-"), p["extractor"], p["resize"], str(p["seconds"]))
    console.print(table)
    console.print(f"dataset: {json.dumps(recipe['dataset'].to_table())}", highlight=False)
