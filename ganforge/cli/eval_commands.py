"""``ganforge eval`` and ``ganforge probe``: scoring checkpoints (and, with ``eval
--fake-images``, images saved by any toolkit).

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


#: ``--set`` of eval: the checkpoint's dataset table only.
EvalSetOption = typer.Option(
    None, "--set", "-s", metavar="dataset.KEY=VALUE",
    help="Change the checkpoint's dataset table (TOML syntax), e.g. dataset.root=PATH; "
         "repeatable.")


@app.command("eval")
@reports_errors
def evaluate(
    checkpoint: Path | None = typer.Argument(
        None, show_default=False,
        help="A ganforge .safetensors checkpoint (none with --fake-images)."),
    fake_images: Path | None = typer.Option(
        None, "--fake-images", metavar="DIR_OR_NPZ",
        help="Score saved images instead of a checkpoint: a folder of .png/.jpg files or an "
             ".npz of uint8 images (NHWC or NCHW, under arr_0 or images), e.g. another "
             "toolkit's samples; --n defaults to all of them."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", metavar="RECIPE_OR_DATASET",
        help="With --fake-images: the real images (a recipe's [dataset] or a dataset name "
             "such as digits), changed with --set dataset.KEY=VALUE."),
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
    """Score a checkpoint's generator, or saved images (--fake-images); every score is
    printed with its protocol.

    The real images come from the checkpoint's own recipe, never downloaded; point it at
    the data with --set dataset.root=PATH (any dataset.KEY=VALUE may be set). The moving
    average of G is scored when the run kept one (--no-ema: the raw G). With
    --fake-images they come from --dataset (or --set dataset.use=NAME), and the images
    must have its size and channels.
    """
    from ..api.evaluate import evaluate as evaluate_checkpoint
    from .eval_seeds import parse_seeds, print_aggregate

    result = evaluate_checkpoint(
        checkpoint, metric, n=n, n_real=n_real, extractor=extractor,
        extractor_params=_extractor_table(extractor_param) if extractor_param else None,
        resize=resize, reference_stats=reference_stats, protocol_images=protocol_images,
        save_reference_stats=save_reference_stats, inception_weights=weights,
        download=download, per_class=per_class, n_per_class=n_per_class, ema=not no_ema,
        dataset_overrides=overrides or (), device=device,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        fake_images=fake_images, dataset=dataset,
        registry=lambda: load_plugins_or_warn().registry, note=_say)
    step, table = result.step, result.dataset
    title = f"{checkpoint} (step {step})" if fake_images is None else str(fake_images)
    if seeds is not None:
        print_aggregate(list(result.per_seed), title, as_json)
        return
    scored = ("the EMA of G (the run's [ema]; --no-ema for the raw G)"
              if result.generator == "ema" else "the raw G (--no-ema)" if no_ema else
              "the raw G (the run kept no EMA)")
    if fake_images is not None and result.results:
        protocol = result.results[0].protocol
        scored = (f"the first {protocol['n_fake']} of the {protocol['fake_images']['images']} "
                  f"images of {fake_images} (sha256 {protocol['fake_images']['sha256'][:16]})")
    if per_class:
        _print_per_class(list(result.per_class), checkpoint, step, table, scored, as_json)
        return
    for warning in (w for r in result.results for w in r.warnings):
        _say(f"warning: {warning}")
    _print_results(list(result.results), title, table, scored, as_json, result.conditional)
    if fake_images is None:
        _say(f"recorded the scores in {result.recorded}" if result.recorded is not None else
             f"warning: {result.record_problem}")
    if result.reference_stats is not None:  # after the scores are shown
        _say(f"wrote the reference statistics of {result.reference_images} real images to "
             f"{result.reference_stats}")


def _extractor_table(texts: list[str]) -> dict[str, Any]:
    """``--extractor-param KEY=VALUE`` (TOML values) as the extractor's params table."""
    from ..core.errors import RecipeError, UsageError
    from ..recipe.loading import parse_override

    table: dict[str, Any] = {}
    for text in texts:
        try:
            parts, value = parse_override(text)
        except RecipeError:
            raise UsageError(f"--extractor-param: expected KEY=VALUE, got {text!r}") from None
        if len(parts) != 1:
            raise UsageError(f"--extractor-param {text!r}: one key, no dots")
        table[parts[0]] = value
    return table


def _print_results(results: list[Any], title: str, table: dict[str, Any], scored: str,
                   as_json: bool, conditional: bool) -> None:
    """One JSON object per metric, or a table of scores with their protocols."""
    console = Console()
    if as_json:
        for r in results:
            console.print_json(json.dumps({"metric": r.label, "value": r.value, **r.extra,
                                           "protocol": r.protocol}))
        return
    out = Table(title=title)
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
    if table:
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


def _print_per_class(results: list[Any], checkpoint: Path | None, step: int | None,
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
    from ..api.probe import probe as probe_checkpoint

    probed = probe_checkpoint(checkpoint, labels_per_class, dataset=dataset,
                              overrides=overrides or (), seed=seed, test_size=test_size,
                              baseline_seed=baseline_seed, device=device,
                              registry=lambda: load_plugins_or_warn().registry, note=_say)
    results, fixed_class, table = probed.results, probed.conditional_class, probed.dataset
    note = (f"the discriminator is conditional: every image was given class {fixed_class}, "
            "D(images, y), and so was the random one, so their features carry no label")
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "step": probed.step,
                               "dataset": table, "labels_per_class": labels_per_class,
                               "seed": seed, "conditional_class": fixed_class,
                               "results": [
                                   {"features": r.name, "accuracy": r.accuracy, "error": r.error,
                                    "C": r.C, "feature_dim": r.feature_dim,
                                    "n_train": r.n_train, "n_test": r.n_test}
                                   for r in results]}, indent=1))
        return
    out = Table(title=f"linear probe: {table['use']}, {labels_per_class} labels per class "
                      f"(step {probed.step})")
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
