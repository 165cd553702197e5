"""``ganforge eval`` and ``ganforge probe``: scoring checkpoints.

A checkpoint may come from anyone, and its embedded recipe names the dataset these commands
read. So a dataset taken from a checkpoint never downloads (``download`` is forced off), is
overridable with ``--set dataset.KEY=VALUE``, and the commands say which folder they read
(:func:`ganforge.training.assembly.checkpoint_dataset`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .app import app, reports_errors, stderr
from .shared import CheckpointArgument, DeviceOption, NoEmaOption, load_plugins_or_warn


def _say(note: str) -> None:
    stderr().print(note, markup=False)


def check_image_counts(*options: tuple[str, int | None]) -> None:
    """Refuse (one line naming the option) an image count over the metrics' ceiling
    (:data:`~ganforge.evaluation.metrics.MAX_IMAGES`); None is an option not given."""
    from ..evaluation.metrics import MAX_IMAGES
    from ..sampling import check_count

    for option, value in options:
        if value is not None:
            check_count(value, option, limit=MAX_IMAGES, low=2)


#: ``--set`` of eval: the checkpoint's dataset table only.
EvalSetOption = typer.Option(
    None, "--set", "-s", metavar="dataset.KEY=VALUE",
    help="Change the checkpoint's dataset table (TOML syntax), e.g. dataset.root=PATH; "
         "repeatable.")


@app.command("eval")
@reports_errors
def evaluate(
    checkpoint: Path = CheckpointArgument,
    metric: list[str] = typer.Option(["fid"], "--metric", "-m",
                                     help="Registered metric(s): fid, kid, inception_score, "
                                          "precision, recall, density, coverage (ganforge "
                                          "components metric)."),
    n: int | None = typer.Option(None, "--n", min=2,
                                 help="Generated images (n_fake), 2 to 1,000,000."),
    n_real: int | None = typer.Option(None, "--n-real", min=2,
                                      help="Real images, 2 to 1,000,000."),
    extractor: str | None = typer.Option(None, "--extractor",
                                         help="Registered feature extractor: inception "
                                              "(default), pixels (smoke tests) or a "
                                              "plugin's."),
    extractor_param: list[str] = typer.Option(
        None, "--extractor-param", metavar="KEY=VALUE",
        help="A param of the extractor (TOML value), e.g. size=16 for pixels or a plugin "
             "extractor's weights=PATH; repeatable (ganforge components show extractor "
             "NAME)."),
    resize: str | None = typer.Option(None, "--resize",
                                      help="Inception's resize: antialias (default, "
                                           "torchmetrics), tf1 (TF FID, torch-fidelity), "
                                           "clean (clean-fid) or pytorch_fid."),
    reference_stats: Path | None = typer.Option(
        None, "--reference-stats",
        help="FID against a .npz of mu and sigma (pytorch-fid, clean-fid) instead of the "
             "dataset's images."),
    protocol_images: int | None = typer.Option(
        None, "--protocol-images", min=1,
        help="Image count of the published protocol the scores follow (e.g. 50000): fewer "
             "generated or real images are warned about."),
    save_reference_stats: Path | None = typer.Option(
        None, "--save-reference-stats",
        help="Also write the real images' mu and sigma (of the first metric that reads "
             "real images) to this .npz, as pytorch-fid and clean-fid read it."),
    weights: Path | None = typer.Option(None, "--inception-weights",
                                        help="Path of pt_inception-2015-12-05-6726825d.pth."),
    download: bool = typer.Option(False, "--download",
                                  help="Fetch the Inception weights into the cache if missing."),
    per_class: bool = typer.Option(
        False, "--per-class",
        help="Score each class on its own (its real images against images generated with "
             "its label) and their mean: intra-class FID. Conditional generators on "
             "labelled datasets only."),
    n_per_class: int | None = typer.Option(
        None, "--n-per-class", min=2,
        help="With --per-class: real and generated images per class (capped at the "
             "class's images; at most 1,000,000); default min(--n, --n-real, images of "
             "the class)."),
    no_ema: bool = NoEmaOption,
    overrides: list[str] = EvalSetOption,
    device: str = DeviceOption,
    seeds: str | None = typer.Option(
        None, "--seeds", metavar="S1,S2,...",
        help="Score each metric once per evaluation seed (its latents and real-image "
             "selection) and print mean ± std (n - 1); --json adds each seed's value."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per metric."),
) -> None:
    """Score a checkpoint's generator; every score is printed with its protocol.

    The real images come from the checkpoint's own recipe, never downloaded; point it at
    the data with --set dataset.root=PATH (any dataset.KEY=VALUE may be set). The moving
    average of G is scored when the run kept one (--no-ema: the raw G).
    """
    from ..errors import UsageError
    from ..evaluation.evaluator import Evaluator
    from ..interfaces import is_conditional
    from ..training import load_experiment, resolve_device
    from ..training.assembly import dataset_override_keys
    from .eval_seeds import aggregate, parse_seeds, print_aggregate

    check_image_counts(("--n", n), ("--n-real", n_real), ("--n-per-class", n_per_class))
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if seed_list is not None and (per_class or save_reference_stats is not None):
        raise UsageError("--seeds scores the whole set once per seed; it does not go with "
                         "--per-class or --save-reference-stats")
    if n_per_class is not None and not per_class:
        raise UsageError("--n-per-class is for --per-class scores; add --per-class")
    plugins = load_plugins_or_warn()
    overrides = list(overrides or [])
    dataset_override_keys(overrides)  # a wrong --set is refused before anything is loaded
    dev = resolve_device(device)
    params: dict[str, object] = {}
    for key, value in (("n_fake", n), ("n_real", n_real), ("extractor", extractor),
                       ("inception_weights", str(weights) if weights else None),
                       ("resize", resize), ("protocol_images", protocol_images)):
        if value is not None:
            params[key] = value
    if download:
        params["download"] = True
    if extractor_param:
        from ..errors import RecipeError
        from ..recipe.loading import parse_override

        table: dict[str, Any] = {}
        for text in extractor_param:
            try:
                parts, value = parse_override(text)
            except RecipeError:
                raise UsageError(f"--extractor-param: expected KEY=VALUE, got {text!r}") \
                    from None
            if len(parts) != 1:
                raise UsageError(f"--extractor-param {text!r}: one key, no dots")
            table[parts[0]] = value
        params["extractor_params"] = table
    if resize is not None and (extractor or "inception") not in ("inception",
                                                                  "ganforge:inception"):
        raise UsageError(f"--resize is the Inception network's; extractor {extractor!r} "
                         "resizes images its own way")
    if reference_stats is not None:
        bad = [name for name in metric if name not in ("fid", "ganforge:fid")]
        if bad:
            raise UsageError(f"--reference-stats is for fid; {', '.join(bad)} need the "
                             "dataset's images (score them in another call)")
        params["reference_stats"] = str(reference_stats)
    if save_reference_stats is not None:
        if reference_stats is not None or per_class:
            raise UsageError("--save-reference-stats writes the statistics of the dataset's "
                             "images; it does not go with --reference-stats or --per-class")
        if save_reference_stats.suffix != ".npz" or save_reference_stats.is_dir() or \
                not save_reference_stats.parent.is_dir():
            raise UsageError(f"--save-reference-stats {save_reference_stats}: not a .npz file "
                             "in an existing folder (pytorch-fid reads only .npz)")
    claimed = _claimed_protocols(checkpoint, metric)
    metrics = {}
    for name in metric:
        own = dict(params)
        if "protocol_images" not in own and claimed.get(name, {}).get("protocol_images"):
            own["protocol_images"] = claimed[name]["protocol_images"]
        metrics[name] = (name, plugins.registry.create("metric", name, own))
        for key in ("extractor", "resize"):
            theirs = claimed.get(name, {}).get(key)
            ours = getattr(metrics[name][1].params, key)
            inception = metrics[name][1].params.extractor in ("inception",
                                                              "ganforge:inception")
            if theirs is not None and theirs != ours and (key == "extractor" or inception):
                _say(f"note: the run's {name} protocol uses {key} = {theirs!r}; this score "
                     f"uses {ours!r} (--{key} {theirs} to match it)")
    for _name, m in metrics.values():
        _check_extractor(plugins.registry, m.params)
        m.reference_file()  # a bad --reference-stats file: one line, before any image
    if save_reference_stats is not None and \
            not any(m.uses_real_images() for _, m in metrics.values()):
        raise UsageError("--save-reference-stats: none of these metrics reads real images")
    if per_class:  # refused before the checkpoint is read
        for name, m in metrics.values():
            if not m.uses_real_images():
                raise UsageError(f"--per-class: metric {name!r} compares with no real images; "
                                 "intra-class scores are for metrics such as fid and kid")
    needs_data = any(m.uses_real_images() for _, m in metrics.values())  # IS: none
    experiment = load_experiment(checkpoint, plugins.registry, dev, dataset_overrides=overrides,
                                 parts={"generator", "dataset"} if needs_data else
                                 {"generator"}, note=_say, ema=not no_ema)
    generator, step, dataset = experiment.generator, experiment.step, experiment.dataset
    assert generator is not None
    table = experiment.recipe["dataset"].to_table()
    if "download" in table:
        table["download"] = False
    evaluator = Evaluator(metrics, dataset, table, dev, classes=experiment.classes,
                          registry=plugins.registry)
    which = "ema" if experiment.generator_is_ema else "raw"
    scored = ("the EMA of G (the run's [ema]; --no-ema for the raw G)" if which == "ema" else
              "the raw G (--no-ema)" if no_ema else "the raw G (the run kept no EMA)")
    if per_class:  # refused in one line for an unconditional G or an unlabelled dataset
        _print_per_class(evaluator.run_per_class(generator, step, n_per_class=n_per_class,
                                                 generator_label=which),
                         checkpoint, step, table, scored, as_json)
        return
    if seed_list is not None:
        runs = []
        for s in seed_list:
            evaluator.metrics = {label: (name, plugins.registry.create(
                "metric", name, {**_params_of(m), "seed": s}))
                for label, (name, m) in metrics.items()}
            runs.append((s, evaluator.run(generator, step, generator_label=which)))
        print_aggregate(aggregate(runs), f"{checkpoint} (step {step})", as_json)
        return
    results = evaluator.run(generator, step, generator_label=which)
    for r in results:
        for warning in r.warnings:
            _say(f"warning: {warning}")
    _print_results(results, checkpoint, step, table, scored, as_json,
                   is_conditional(generator))
    _record(checkpoint, step, results)
    if save_reference_stats is not None:  # after the scores are shown
        from ..evaluation.npz_stats import save_reference_npz

        mu, sigma, n_images = evaluator.real_statistics()
        save_reference_npz(save_reference_stats, mu.numpy(), sigma.numpy())
        _say(f"wrote the reference statistics of {n_images} real images to "
             f"{save_reference_stats}")


def _params_of(metric: Any) -> dict[str, Any]:
    """A metric's params as the table that made it."""
    from ..structuring import unstructure_params

    return dict(unstructure_params(metric.params))


def _record(checkpoint: Path, step: int, results: list[Any]) -> None:
    """Record the scores beside the checkpoint (its model card shows them); a file that
    cannot be written is a warning, the scores being printed already."""
    from ..errors import StorageError
    from ..sharing.scores import record_evaluations

    try:
        _say(f"recorded the scores in {record_evaluations(checkpoint, step, results)}")
    except StorageError as exc:
        _say(f"warning: {exc}")


def _check_extractor(registry: Any, params: Any) -> None:
    """The metric's extractor is registered and its params structure: one line if not."""
    from ..errors import RecipeError, UnknownComponentError, UsageError

    try:
        registry.structure("extractor", params.extractor, params.extractor_table(),
                           "--extractor-param")
    except UnknownComponentError as exc:
        raise UsageError(f"--extractor: {exc}") from None
    except RecipeError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def _claimed_protocols(checkpoint: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """What the checkpoint's recipe says of each metric named (its ``[eval.metrics.*]``
    table with that ``use``): ``protocol_images``, ``extractor`` and ``resize`` as the
    recipe sets them, so ``ganforge eval`` warns about fewer images than the run's protocol
    and notes a different pipeline. Nothing when the header does not read (the checkpoint
    is refused with its own message later)."""
    from ..errors import GanforgeError
    from ..io.checkpoint_files import read_header

    try:
        table = read_header(checkpoint).recipe_table
    except (GanforgeError, OSError, ValueError):
        return {}
    evaluation = table.get("eval")
    tables = evaluation.get("metrics") if isinstance(evaluation, dict) else None
    claimed: dict[str, dict[str, Any]] = {}
    for metric in tables.values() if isinstance(tables, dict) else ():
        if not isinstance(metric, dict) or not isinstance(metric.get("use"), str):
            continue
        for name in names:
            if metric["use"] in (name, f"ganforge:{name}") and name not in claimed:
                claimed[name] = {key: metric[key] for key in
                                 ("protocol_images", "extractor", "resize") if key in metric}
    return claimed


def _print_results(results: list[Any], checkpoint: Path, step: int, table: dict[str, Any],
                   scored: str, as_json: bool, conditional: bool) -> None:
    """One JSON object per metric, or a table of scores with their protocols."""
    console = Console()
    if as_json:
        for r in results:
            console.print_json(json.dumps({"metric": r.label, "value": r.value, **r.extra,
                                           "protocol": r.protocol}))
        return
    out = Table(title=f"{checkpoint} (step {step})")
    for column in ("metric", "value", "fake", "real", "extractor", "resize", "reference",
                   "seconds"):
        out.add_column(column)
    for r in results:
        p = r.protocol
        extra = "".join(f" ± {v:.4g}" for k, v in r.extra.items() if k == "std")
        stats_file = p.get("reference") if r.reference is None else None
        reference = r.reference["key"] if r.reference else \
            Path(stats_file["file"]).name if isinstance(stats_file, dict) else "-"
        out.add_row(r.label, f"{r.value:.4f}{extra}", str(p["n_fake"]),
                    str(p["n_real"] or "-"), p["extractor"], p["resize"], reference,
                    str(p["seconds"]))
    console.print(out)
    console.print(f"generator: {scored}", highlight=False, soft_wrap=True, markup=False)
    if conditional and results:
        console.print(f"fake labels: {results[0].protocol['fake_labels']}", highlight=False,
                      soft_wrap=True)
    console.print(f"dataset: {json.dumps(table)}", highlight=False, soft_wrap=True)
    _print_references(console, [r.reference for r in results if r.reference])


def _print_references(console: Console, records: list[dict[str, Any]]) -> None:
    """One line per reference (real-image statistics) used: its key and what it read."""
    references = {r["key"]: r for r in records}
    for key, reference in references.items():
        _print_roots(console, reference, f"reference {key}")


def _print_roots(console: Console, reference: dict[str, Any], what: str) -> None:
    """``what: root=PATH (fingerprint)`` of a reference, or that it read no files."""
    roots = "".join(f" {name}={path} ({reference['content'][name][:16]})"
                    for name, path in reference["roots"].items())
    console.print(f"{what}:{roots or ' no files (built-in dataset)'}", highlight=False,
                  soft_wrap=True, markup=False)


def _print_per_class(results: list[Any], checkpoint: Path, step: int,
                     table: dict[str, Any], scored: str, as_json: bool) -> None:
    """``eval --per-class``: one JSON object per metric (the mean as ``value``, each
    class's score with its protocol under ``classes``), or a table of one row per class and
    metric, then each metric's mean (the intra-class score)."""
    for r in results:
        for c in r.per_class:
            for warning in c.warnings:
                _say(f"warning: {warning}")
    console = Console()
    if as_json:
        for r in results:
            console.print_json(json.dumps({
                "metric": r.label, "value": r.value, "intra_class": True,
                "classes": [{"class": c.protocol["class"], "value": c.value, **c.extra,
                             "protocol": c.protocol} for c in r.per_class],
                "protocol": r.protocol}))
        return
    out = Table(title=f"{checkpoint} (step {step}): intra-class scores, class by class")
    for column in ("metric", "class", "value", "fake", "real", "extractor", "seconds"):
        out.add_column(column)
    for r in results:
        for c in r.per_class:
            p = c.protocol
            extra = "".join(f" ± {v:.4g}" for k, v in c.extra.items() if k == "std")
            out.add_row(r.label, str(p["class"]), f"{c.value:.4f}{extra}", str(p["n_fake"]),
                        str(p["n_real"]), p["extractor"], str(p["seconds"]))
        out.add_row(r.label, "mean", f"{r.value:.4f}", str(sum(r.protocol["n_fake"])),
                    str(sum(r.protocol["n_real"])), r.protocol["extractor"],
                    str(r.protocol["seconds"]), end_section=True)
    console.print(out)
    for r in results:
        console.print(r.summary(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"generator: {scored}; class c's images are generated with label c",
                  highlight=False, soft_wrap=True, markup=False)
    console.print(f"dataset: {json.dumps(table)}", highlight=False, soft_wrap=True,
                  markup=False)
    records = {c.protocol["class"]: c.reference for r in results for c in r.per_class
               if c.reference}
    if records:
        keys = ", ".join(f"{cls} {record['key']}" for cls, record in records.items())
        console.print(f"references (class key): {keys}", highlight=False, soft_wrap=True)
        _print_roots(console, next(iter(records.values())), "read")


@app.command()
@reports_errors
def probe(
    checkpoint: Path = CheckpointArgument,
    labels_per_class: int = typer.Option(..., "--labels-per-class", "-l", min=1,
                                         help="Labelled training images per class."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", metavar="RECIPE_OR_DATASET",
        help="Labelled data (digits, cifar10, svhn, mnist, or a recipe); default: the "
             "checkpoint's dataset. A name takes the discriminator's image size and channels "
             "unless --set says otherwise."),
    overrides: list[str] = typer.Option(
        None, "--set", "-s", metavar="KEY=VALUE",
        help="Without --dataset: change the checkpoint's dataset table (dataset.root=PATH). "
             "With a dataset name: its params (image_size=64); with a recipe: recipe paths. "
             "Repeatable."),
    seed: int = typer.Option(0, "--seed", help="Seed of the labelled/held-out split."),
    test_size: int = typer.Option(10_000, "--test-size", min=1,
                                  help="Held-out images scored (at most)."),
    baseline_seed: int = typer.Option(1, "--baseline-seed",
                                      help="Seed of the random discriminator's weights."),
    device: str = DeviceOption,
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Linear probe of D's features (DCGAN §5.1): trained D against a random D."""
    from ..evaluation.probe import run_probe
    from ..training import assemble, load_experiment, resolve_device
    from ..training.assembly import dataset_override_keys
    from .data_commands import dataset_source

    plugins = load_plugins_or_warn()
    registry = plugins.registry
    overrides = list(overrides or [])
    if dataset is None:  # then --set changes the checkpoint's own dataset table
        dataset_override_keys(overrides)
    dev = resolve_device(device)
    experiment = load_experiment(
        checkpoint, registry, "cpu", parts={"discriminator", "dataset"} if dataset is None
        else {"discriminator"}, dataset_overrides=overrides if dataset is None else (),
        note=_say)
    trained = experiment.discriminator
    random_d = assemble(experiment.recipe, registry, "cpu", parts={"discriminator"},
                        seed=baseline_seed, training=False).discriminator
    assert trained is not None and random_d is not None
    spec: Any = getattr(trained, "image_spec", None)
    data: Any
    if dataset is None:
        data = experiment.dataset
        table = experiment.recipe["dataset"].to_table()
    else:
        sets = list(overrides)
        is_name = not (dataset.endswith(".toml") or Path(dataset).is_file())
        if is_name and spec is not None:
            given = {s.split("=", 1)[0].strip() for s in sets}
            sets = [f"{k}={v}" for k, v in (("image_size", spec.size),
                                            ("channels", spec.channels)) if k not in given] + sets
        table, _ = dataset_source(dataset, sets, plugins)
        data = registry.create("dataset", table["use"],
                               {k: v for k, v in table.items() if k != "use"})
    results = run_probe(trained, random_d, data, labels_per_class, seed, test_size, dev)
    fixed_class = next((r.fixed_class for r in results if r.fixed_class is not None), None)
    note = (f"the discriminator is conditional: every image was given class {fixed_class}, "
            "D(images, y), and so was the random one, so their features carry no label")
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "step": experiment.step,
                               "dataset": table, "labels_per_class": labels_per_class,
                               "seed": seed, "conditional_class": fixed_class,
                               "results": [
                                   {"features": r.name, "accuracy": r.accuracy, "error": r.error,
                                    "C": r.C, "feature_dim": r.feature_dim,
                                    "n_train": r.n_train, "n_test": r.n_test}
                                   for r in results]}, indent=1))
        return
    out = Table(title=f"linear probe: {table['use']}, {labels_per_class} labels per class "
                      f"(step {experiment.step})")
    for column in ("features", "accuracy", "error", "C (cross-validated)", "dims", "train",
                   "test"):
        out.add_column(column)
    for r in results:
        out.add_row(r.name, f"{100 * r.accuracy:.2f}%", f"{100 * r.error:.2f}%", f"{r.C:g}",
                    str(r.feature_dim), str(r.n_train), str(r.n_test))
    console = Console()
    console.print(out)
    if fixed_class is not None:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
