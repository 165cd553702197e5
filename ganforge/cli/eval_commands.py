"""``ganforge eval`` and ``ganforge probe``: scoring checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UsageError
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


@app.command()
@reports_errors
def probe(
    checkpoint: Path = typer.Argument(..., help="A ganforge .safetensors checkpoint."),
    labels_per_class: int = typer.Option(..., "--labels-per-class", "-l", min=1,
                                         help="Labelled training images per class."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", metavar="RECIPE_OR_DATASET",
        help="Labelled data (digits, cifar10, svhn, mnist, or a recipe); default: the "
             "checkpoint's dataset. A name takes the discriminator's image size and channels "
             "unless --set says otherwise."),
    overrides: list[str] = SetOption,
    seed: int = typer.Option(0, "--seed", help="Seed of the labelled/held-out split."),
    test_size: int = typer.Option(10_000, "--test-size", min=1,
                                  help="Held-out images scored (at most)."),
    baseline_seed: int = typer.Option(1, "--baseline-seed",
                                      help="Seed of the random discriminator's weights."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Linear probe of D's features (DCGAN §5.1): trained D against a random D."""
    import tomllib

    from ..evaluation.probe import run_probe
    from ..recipe import build_recipe
    from ..training import build_networks, read_checkpoint, resolve_device
    from ..training.checkpoint import load_module_state
    from .data_commands import dataset_source

    plugins = _plugins()
    registry = plugins.registry
    dev = resolve_device(device)
    contents = read_checkpoint(checkpoint)
    recipe = build_recipe(tomllib.loads(contents.recipe_toml), registry, source=str(checkpoint))
    _, trained = build_networks(recipe, registry)
    load_module_state(trained, contents.section("discriminator"), "discriminator", checkpoint)
    _, random_d = build_networks(recipe, registry, seed=baseline_seed)
    spec = trained.image_spec if hasattr(trained, "image_spec") else None
    if dataset is None:
        if overrides:
            raise UsageError("--set needs --dataset (the checkpoint's dataset is used as is)")
        table = recipe["dataset"].to_table()
    else:
        sets = list(overrides or [])
        is_name = not (dataset.endswith(".toml") or Path(dataset).is_file())
        if is_name and spec is not None:
            given = {s.split("=", 1)[0].strip() for s in sets}
            sets = [f"{k}={v}" for k, v in (("image_size", spec.size),
                                            ("channels", spec.channels)) if k not in given] + sets
        table, _ = dataset_source(dataset, sets, plugins)
    data = registry.create("dataset", table["use"], {k: v for k, v in table.items() if k != "use"})
    results = run_probe(trained, random_d, data, labels_per_class, seed, test_size, dev)
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "step": contents.step,
                               "dataset": table, "labels_per_class": labels_per_class,
                               "seed": seed, "results": [
                                   {"features": r.name, "accuracy": r.accuracy, "error": r.error,
                                    "C": r.C, "feature_dim": r.feature_dim,
                                    "n_train": r.n_train, "n_test": r.n_test}
                                   for r in results]}, indent=1))
        return
    out = Table(title=f"linear probe: {table['use']}, {labels_per_class} labels per class "
                      f"(step {contents.step})")
    for column in ("features", "accuracy", "error", "C (cross-validated)", "dims", "train",
                   "test"):
        out.add_column(column)
    for r in results:
        out.add_row(r.name, f"{100 * r.accuracy:.2f}%", f"{100 * r.error:.2f}%", f"{r.C:g}",
                    str(r.feature_dim), str(r.n_train), str(r.n_test))
    Console().print(out)
