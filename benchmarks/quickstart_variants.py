"""Train the quickstart with some recipe changes and score its final generator: the probe
behind the single-seed variants in docs/results.md ("What was tried besides").

    python benchmarks/quickstart_variants.py z5 --set generator.latent_dim=5
    python benchmarks/quickstart_variants.py ema --set ema.enabled=true --threads 1

Prints one JSON line (also appended to ``--results``): the training seconds and, for the
raw generator and its EMA when the run keeps one, ``[digits_is, rarest share, commonest
share]`` of 5,000 images (``--n``; seed 1) with BatchNorm in three modes: ``eval`` (running
statistics, what ``ganforge eval`` uses), ``train`` (batch statistics of 500 images) and
``standing`` (running statistics recomputed for the final weights from 40 batches of 256,
``--standing-batches``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ganforge  # noqa: E402
from ganforge.evaluation.digit_classifier import DigitClassifier  # noqa: E402
from ganforge.training.experiment_loading import load_checkpoint_generator  # noqa: E402

QUICKSTART = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.toml"


def digits_is(generator: torch.nn.Module, classifier: DigitClassifier, n: int = 5000,
              batch: int = 500, seed: int = 1) -> list[float]:
    """``[digits_is, rarest digit's share, commonest digit's share]`` of ``n`` images."""
    rng = torch.Generator().manual_seed(seed)
    parts = []
    with torch.no_grad():
        for _ in range(0, n, batch):
            images = generator(generator.sample_latent(batch, rng, "cpu"))
            parts.append(classifier.probabilities(images.float().mean(1, keepdim=True))[:, 0])
    p = torch.cat(parts)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (torch.log(p + 1e-12) - torch.log(marginal + 1e-12))).sum(1).mean()
    shares = torch.bincount(p.argmax(1), minlength=10).float() / len(p)
    return [round(float(kl.exp()), 3), round(float(shares.min()), 3),
            round(float(shares.max()), 3)]


def standing(generator: torch.nn.Module, batches: int = 40, batch: int = 256,
             seed: int = 7) -> torch.nn.Module:
    """A copy of ``generator`` whose BatchNorm statistics are recomputed for its weights."""
    copied = copy.deepcopy(generator)
    rng = torch.Generator().manual_seed(seed)
    for module in copied.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches
    copied.train()
    with torch.no_grad():
        for _ in range(batches):
            copied(copied.sample_latent(batch, rng, "cpu"))
    return copied.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the variant's name (its run folder under --runs)")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="recipe override KEY.PATH=VALUE (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--n", type=int, default=5000, help="images scored (multiple of 500)")
    parser.add_argument("--standing-batches", type=int, default=40,
                        help="batches of 256 the standing statistics are computed from")
    parser.add_argument("--runs", type=Path, default=Path("runs/quickstart_variants"))
    parser.add_argument("--results", type=Path, default=None,
                        help="append the JSON line here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plugins = ganforge.load_plugins()
    classifier = DigitClassifier(32, 0)
    out = args.runs / args.name
    started = time.perf_counter()
    ganforge.train(QUICKSTART, plugins, out, overrides=[
        "run.checkpoint_every=100000", "run.sample_every=100000", *args.overrides])
    row: dict[str, object] = {"name": args.name, "overrides": args.overrides,
                              "train_s": round(time.perf_counter() - started, 1)}
    checkpoint = sorted((out / "checkpoints").glob("step-*.safetensors"))[-1]
    for ema in (False, True):
        generator, recipe, _ = load_checkpoint_generator(checkpoint, plugins.registry, ema=ema)
        if ema and not recipe.ema.enabled:
            continue
        tag = "ema" if ema else "raw"
        row[f"{tag}_eval"] = digits_is(generator, classifier, args.n)
        row[f"{tag}_train"] = digits_is(copy.deepcopy(generator).train(), classifier, args.n)
        row[f"{tag}_standing"] = digits_is(standing(generator, args.standing_batches),
                                           classifier, args.n)
    line = json.dumps(row)
    print(line, flush=True)
    if args.results is not None:
        with args.results.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
