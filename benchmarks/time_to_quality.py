"""Time to quality: ganforge and the plain PyTorch DCGAN loop, trained on the same data in
one run on the same machine, judged by the same metric every ``--every`` steps.

    python benchmarks/time_to_quality.py                       # the quickstart, digits_is
    python benchmarks/time_to_quality.py --recipe stacked_digits --metric modes \\
        --metric mode_kl --levels 100,300,600

For each side it prints the metrics at every evaluated step with the seconds spent training
(evaluation time excluded: ganforge's includes its own logging, samples and checkpoints),
then, for each quality level of the first metric, the first step and the seconds at which
the side reached it,
and the ratio plain / ganforge (above 1: ganforge got there sooner). The plain loop is the
example's (``ganforge.peer``: normal latents, BCE with a Sigmoid, Adam 2e-4 / 0.5) with
the recipe's dataset, batch, width and steps; the metric is computed by the same
``Evaluator`` with the same seed and image count. ``--json FILE`` also writes every
figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge import load_plugins  # noqa: E402
from ganforge.evaluation.evaluator import Evaluator  # noqa: E402
from ganforge.peer import train_plain  # noqa: E402
from ganforge.recipe import apply_overrides, build_recipe, load_raw  # noqa: E402
from ganforge.training import assemble, train  # noqa: E402

DEFAULT_LEVELS = {"digits_is": "7.0,8.0,8.5,8.99", "modes": "100,300,600", "mode_kl": "3,2,1"}


def curve_of_ganforge(recipe: Any, plugins: Any, out: Path, metrics: list[str]
                      ) -> list[dict[str, float]]:
    """Train ``recipe`` (its ``[eval]`` set by the caller) and read its evaluations back:
    step, each metric's value and training seconds (the run's elapsed time less evaluation
    time)."""
    train(recipe, plugins, out, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Training lines carry the elapsed time; evaluation lines (logged on the same steps:
    # run.log_every = --every) their own seconds, which come before the next training line.
    elapsed = {r["step"]: r["elapsed_s"] for r in records if "elapsed_s" in r}
    curve, eval_seconds = [], 0.0
    for record in records:
        if "eval/seconds" in record:
            curve.append({"step": record["step"], "seconds": elapsed[record["step"]] -
                          eval_seconds, **{m: record[f"eval/{m}"] for m in metrics}})
            eval_seconds += record["eval/seconds"]
    points = {p["step"]: p for p in curve}
    for line in (out / "evaluations.jsonl").read_text().splitlines():
        scored = json.loads(line)
        point = points.get(scored["step"])
        if point is not None:
            point.update({f"{scored['label']}/{k}": v for k, v in scored["extra"].items()})
    return curve


def curve_of_plain(recipe: Any, plugins: Any, evaluator: Evaluator, every: int
                   ) -> list[dict[str, float]]:
    """Train the example's loop on the recipe's dataset, judged every ``every`` steps."""
    x = assemble(recipe, plugins.registry, "cpu", parts={"dataset"})
    curve: list[dict[str, float]] = []

    def judge(step: int, generator: Any, seconds: float) -> None:
        values: dict[str, float] = {}
        for r in evaluator.run(generator, step):
            values[r.label] = r.value
            values.update({f"{r.label}/{key}": extra for key, extra in r.extra.items()})
        curve.append({"step": step, "seconds": seconds, **values})

    g = recipe["generator"].params
    train_plain(x.dataset, steps=recipe.run.steps, batch_size=recipe.run.batch_size,
                width=g.width, seed=recipe.run.seed, nz=g.latent_dim, every=every,
                hook=judge)
    return curve


def first_reaching(curve: list[dict[str, float]], metric: str, level: float, higher: bool
                   ) -> dict[str, float] | None:
    return next((p for p in curve if (p[metric] >= level if higher else p[metric] <= level)),
                None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart",
                        help="a recipe file or shipped name (default: quickstart)")
    parser.add_argument("--metric", action="append", default=None,
                        help="digits_is, modes, mode_kl, ... (repeatable; the levels are the "
                        "first one's; default: digits_is)")
    parser.add_argument("--levels", default=None, help="comma-separated quality levels")
    parser.add_argument("--every", type=int, default=250, help="steps between evaluations")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: recipe's)")
    parser.add_argument("--n", type=int, default=None,
                        help="generated images per evaluation (default: the metric's)")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="recipe override KEY=VALUE (ganforge's side and shared settings)")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    metrics = args.metric or ["digits_is"]
    plugins = load_plugins()
    name = args.recipe if args.recipe.endswith(".toml") or ":" in args.recipe \
        else f"ganforge:{args.recipe}"
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    overrides += ["run.device=cpu", f"eval.every={args.every}", f"run.log_every={args.every}",
                  "run.checkpoint_every=1000000"]
    for m in metrics:  # the benchmark's metrics replace the recipe's [eval.metrics]
        overrides.append(f"eval.metrics.{m}.use={m}")
        if args.n is not None:
            overrides.append(f"eval.metrics.{m}.n_fake={args.n}")
    table = apply_overrides(load_raw(name), overrides)
    table["eval"]["metrics"] = {m: table["eval"]["metrics"][m] for m in metrics}
    table["eval"].pop("best", None)
    recipe = build_recipe(table, plugins.registry, source=name)
    first = metrics[0]
    higher = plugins.registry.get("metric", recipe.metrics[first].name).higher_is_better
    levels = [float(v) for v in (args.levels or DEFAULT_LEVELS.get(first, "")).split(",") if v]
    evaluator = Evaluator({m: (c.name, plugins.registry.create("metric", c.name, c.params))
                           for m, c in recipe.metrics.items()}, None,
                          recipe["dataset"].to_table(), torch.device("cpu"),
                          registry=plugins.registry)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ours = curve_of_ganforge(recipe, plugins, Path(tmp) / "run", metrics)
    plain = curve_of_plain(recipe, plugins, evaluator, args.every)
    wall = time.perf_counter() - started

    print(f"time to quality: {name}, {', '.join(metrics)} (levels: {first}, "
          f"{'higher' if higher else 'lower'} is better), {recipe.run.steps} steps of batch "
          f"{recipe.run.batch_size}, {torch.get_num_threads()} CPU threads, {wall:.0f} s in all")
    print(f"{'step':>6} " + " ".join(f"{'ganforge ' + m:>18}" for m in metrics) +
          f" {'s':>7} " + " ".join(f"{'plain ' + m:>18}" for m in metrics) + f" {'s':>7}")
    for a, b in zip(ours, plain, strict=False):
        print(f"{a['step']:>6} " + " ".join(f"{a[m]:>18.4g}" for m in metrics) +
              f" {a['seconds']:>7.1f} " + " ".join(f"{b[m]:>18.4g}" for m in metrics) +
              f" {b['seconds']:>7.1f}")
    extras = sorted(k for k in plain[-1] if "/" in k) if plain else []
    if extras:
        print("at the last step: " + ", ".join(
            f"{k} {ours[-1].get(k, float('nan')):.4g} (plain {plain[-1][k]:.4g})"
            for k in extras))
    print(f"{'level':>8} {'ganforge step':>14} {'s':>7} {'plain step':>11} {'s':>7} "
          f"{'ratio (plain s / ganforge s)':>29}")
    rows = []
    for level in levels:
        a, b = (first_reaching(ours, first, level, higher),
                first_reaching(plain, first, level, higher))
        ratio = (b["seconds"] / a["seconds"]) if a and b else None
        rows.append({"level": level, "ganforge": a, "plain": b, "ratio": ratio})
        show = [f"{p['step']:>14.0f} {p['seconds']:>7.1f}" if p else f"{'not reached':>14} "
                f"{'-':>7}" for p in (a, b)]
        shown_ratio = f"{ratio:.2f}x" if ratio is not None else (
            "ganforge only" if a else "plain only" if b else "neither")
        print(f"{level:>8g} {show[0]} {show[1][3:]:>19} {shown_ratio:>29}")
    if args.json is not None:
        args.json.write_text(json.dumps({"recipe": name, "metrics": metrics,
                                         "ganforge": ours, "plain": plain, "levels": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
