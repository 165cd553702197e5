"""What the EMA of G does to the quickstart's samples, and how well the conditional
quickstart draws the class it is asked for, judged by a digit classifier.

    python benchmarks/quickstart_quality.py RUN_DIR [--n 1000] [--seed 0]

RUN_DIR is a run of ``recipes/quickstart.toml`` or ``recipes/quickstart_conditional.toml``
trained with ``[ema] enabled = true`` (the same run gives both generators). For its newest
checkpoint, prints side by side for the EMA generator and the raw G: the classifier's mean
confidence, the digits covered (drawn in at least 2% of the samples), and for a conditional
run the share of samples of class k classified as k, per class and overall.
The classifier (``ganforge.evaluation.digit_classifier``) is trained on the real digits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge import load_plugins  # noqa: E402
from ganforge.evaluation.digit_classifier import DigitClassifier  # noqa: E402
from ganforge.interfaces import is_conditional  # noqa: E402
from ganforge.sampling import generate  # noqa: E402
from ganforge.training.assembly import load_experiment  # noqa: E402
from ganforge.training.run_dir import RunDirectory  # noqa: E402


def judge(checkpoint: Path, ema: bool, n: int, seed: int, classifier: DigitClassifier
          ) -> dict[str, object]:
    """Classifier figures for ``n`` samples (``n`` per class when conditional)."""
    experiment = load_experiment(checkpoint, load_plugins().registry, "cpu", ema=ema)
    generator = experiment.generator
    assert generator is not None
    rng = torch.Generator().manual_seed(seed)
    if not is_conditional(generator):
        scores = classifier.score(generate(generator, generator.sample_latent(n, rng, "cpu")))
        return {"confidence": float(scores.confidence.mean()), "coverage": scores.coverage()}
    per_class, confidences, predicted = [], [], []
    for k in range(experiment.classes):
        z = generator.sample_latent(n, rng, "cpu")
        scores = classifier.score(generate(generator, z, torch.full((n,), k)))
        per_class.append(scores.accuracy(k))
        confidences.append(scores.confidence.mean())
        predicted.append(scores.predicted)
    everything = np.concatenate(predicted)
    return {"confidence": float(np.mean(confidences)),
            "coverage": int(np.sum(np.bincount(everything, minlength=10)
                                   >= 0.02 * len(everything))),
            "accuracy": float(np.mean(per_class)), "per_class": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=1000, help="samples (per class if conditional)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    checkpoint = RunDirectory(args.run_dir).latest_checkpoint()
    if checkpoint is None:
        sys.exit(f"no checkpoint in {args.run_dir}")
    classifier = DigitClassifier(32)
    rows = {"EMA": judge(checkpoint, True, args.n, args.seed, classifier),
            "raw G": judge(checkpoint, False, args.n, args.seed, classifier)}
    print(f"{checkpoint}  ({args.n} samples{' per class' if 'accuracy' in rows['EMA'] else ''},"
          f" seed {args.seed})")
    print(f"{'generator':<10} {'confidence':>10} {'coverage':>9} {'accuracy':>9}")
    for name, row in rows.items():
        accuracy = f"{row['accuracy']:.3f}" if "accuracy" in row else "-"
        print(f"{name:<10} {row['confidence']:>10.3f} {row['coverage']:>6}/10 {accuracy:>9}")
    for name, row in rows.items():
        if "per_class" in row:
            shown = " ".join(f"{k}:{a:.2f}" for k, a in enumerate(row["per_class"]))  # type: ignore[arg-type]
            print(f"{name} per class: {shown}")


if __name__ == "__main__":
    main()
