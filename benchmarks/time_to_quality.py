"""Time to quality: ganforge and the plain PyTorch DCGAN loop, trained on the same data in
one run on the same machine, judged by the same metric every ``--every`` steps.

    python benchmarks/time_to_quality.py                       # the quickstart, digits_is
    python benchmarks/time_to_quality.py --recipe stacked_digits --metric modes \\
        --levels 100,300,600

For each side it prints the metric at every evaluated step with the seconds spent training
(evaluation time excluded: ganforge's includes its own logging, samples and checkpoints),
then, for each quality level, the first step and the seconds at which the side reached it,
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
from ganforge.recipe import load_recipe  # noqa: E402
from ganforge.training import assemble, train  # noqa: E402

DEFAULT_LEVELS = {"digits_is": "7.0,8.0,8.84", "modes": "100,300,600", "mode_kl": "3,2,1"}


def curve_of_ganforge(recipe: Any, plugins: Any, out: Path) -> list[dict[str, float]]:
    """Train ``recipe`` (its ``[eval]`` set by the caller) and read its evaluations back:
    step, value and training seconds (the run's elapsed time less evaluation time)."""
    train(recipe, plugins, out, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Training lines carry the elapsed time; evaluation lines (logged on the same steps:
    # run.log_every = --every) their own seconds, which come before the next training line.
    elapsed = {r["step"]: r["elapsed_s"] for r in records if "elapsed_s" in r}
    curve, eval_seconds = [], 0.0
    for record in records:
        if "eval/ttq" in record:
            curve.append({"step": record["step"], "value": record["eval/ttq"],
                          "seconds": elapsed[record["step"]] - eval_seconds})
            eval_seconds += record["eval/seconds"]
    return curve


def curve_of_plain(recipe: Any, plugins: Any, evaluator: Evaluator, every: int
                   ) -> list[dict[str, float]]:
    """Train the example's loop on the recipe's dataset, judged every ``every`` steps."""
    x = assemble(recipe, plugins.registry, "cpu", parts={"dataset"})
    curve: list[dict[str, float]] = []

    def judge(step: int, generator: Any, seconds: float) -> None:
        value = evaluator.run(generator, step)[0].value
        curve.append({"step": step, "value": value, "seconds": seconds})

    g = recipe["generator"].params
    train_plain(x.dataset, steps=recipe.run.steps, batch_size=recipe.run.batch_size,
                width=g.width, seed=recipe.run.seed, nz=g.latent_dim, every=every,
                hook=judge)
    return curve


def first_reaching(curve: list[dict[str, float]], level: float, higher: bool
                   ) -> dict[str, float] | None:
    return next((p for p in curve if (p["value"] >= level if higher else p["value"] <= level)),
                None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart",
                        help="a recipe file or shipped name (default: quickstart)")
    parser.add_argument("--metric", default="digits_is",
                        help="digits_is, modes or mode_kl (default: digits_is)")
    parser.add_argument("--levels", default=None, help="comma-separated quality levels")
    parser.add_argument("--every", type=int, default=250, help="steps between evaluations")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: recipe's)")
    parser.add_argument("--n", type=int, default=None,
                        help="generated images per evaluation (default: the metric's)")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="recipe override KEY=VALUE (ganforge's side and shared settings)")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    plugins = load_plugins()
    name = args.recipe if args.recipe.endswith(".toml") or ":" in args.recipe \
        else f"ganforge:{args.recipe}"
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"run.steps={args.steps}")
    overrides += ["run.device=cpu", f"eval.every={args.every}", f"run.log_every={args.every}",
                  f"eval.metrics.ttq.use={args.metric}", "run.checkpoint_every=1000000"]
    if args.n is not None:
        overrides.append(f"eval.metrics.ttq.n_fake={args.n}")
    recipe = load_recipe(name, plugins.registry, overrides)
    metric = recipe.metrics["ttq"]
    higher = plugins.registry.get("metric", metric.name).higher_is_better
    levels = [float(v) for v in (args.levels or DEFAULT_LEVELS.get(args.metric, "")).split(",")
              if v]
    evaluator = Evaluator({"ttq": (metric.name, plugins.registry.create(
        "metric", metric.name, metric.params))}, None, recipe["dataset"].to_table(),
        torch.device("cpu"), registry=plugins.registry)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ours = curve_of_ganforge(recipe, plugins, Path(tmp) / "run")
    plain = curve_of_plain(recipe, plugins, evaluator, args.every)
    wall = time.perf_counter() - started

    print(f"time to quality: {name}, {args.metric} ({'higher' if higher else 'lower'} is "
          f"better), {recipe.run.steps} steps of batch {recipe.run.batch_size}, "
          f"{torch.get_num_threads()} CPU threads, {wall:.0f} s in all")
    print(f"{'step':>6} {'ganforge':>10} {'s':>7} {'plain loop':>11} {'s':>7}")
    for a, b in zip(ours, plain, strict=False):
        print(f"{a['step']:>6} {a['value']:>10.3f} {a['seconds']:>7.1f} {b['value']:>11.3f}"
              f" {b['seconds']:>7.1f}")
    print(f"{'level':>8} {'ganforge step':>14} {'s':>7} {'plain step':>11} {'s':>7} "
          f"{'ratio (plain s / ganforge s)':>29}")
    rows = []
    for level in levels:
        a, b = first_reaching(ours, level, higher), first_reaching(plain, level, higher)
        ratio = (b["seconds"] / a["seconds"]) if a and b else None
        rows.append({"level": level, "ganforge": a, "plain": b, "ratio": ratio})
        show = [f"{p['step']:>14.0f} {p['seconds']:>7.1f}" if p else f"{'not reached':>14} "
                f"{'-':>7}" for p in (a, b)]
        shown_ratio = f"{ratio:.2f}x" if ratio is not None else (
            "ganforge only" if a else "plain only" if b else "neither")
        print(f"{level:>8g} {show[0]} {show[1][3:]:>19} {shown_ratio:>29}")
    if args.json is not None:
        args.json.write_text(json.dumps({"recipe": name, "metric": args.metric,
                                         "ganforge": ours, "plain": plain, "levels": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
