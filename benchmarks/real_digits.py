"""The digit metrics on real images: the ceiling every generated figure is read against.

    python benchmarks/real_digits.py

Prints ``digits_is`` of scikit-learn's 1,797 digits at 32x32 (the ``digits`` dataset) and
``modes`` / ``mode_kl`` of 26,000 real stacked digits (``stacked_digits``, seed 0), judged
by the same ``digits`` classifier as generated images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganforge.datasets.digits import DigitsDataset, StackedDigitsDataset  # noqa: E402
from ganforge.evaluation.digit_classifier import DigitClassifier  # noqa: E402
from ganforge.evaluation.digit_metrics import DigitsInceptionScore, ModeKL, Modes  # noqa: E402
from ganforge.evaluation.features import FeatureSet  # noqa: E402


def main() -> None:
    classifier = DigitClassifier(32)
    digits = DigitsDataset(DigitsDataset.Params())
    real = FeatureSet(classifier.probabilities(digits.images).flatten(1))
    value, extra = DigitsInceptionScore(DigitsInceptionScore.Params()).score(real, None)
    print(f"digits (1,797 real): digits_is {value:.3f}, class shares "
          f"{extra['min_share']:.3f} to {extra['max_share']:.3f}")
    stacked = StackedDigitsDataset(StackedDigitsDataset.Params(size=26_000))
    images = torch.stack([stacked.digits[stacked.picks[:, c]] for c in range(3)], dim=1)
    real = FeatureSet(classifier.probabilities(images).flatten(1))
    modes = Modes(Modes.Params()).score(real, None)[0]
    kl = ModeKL(ModeKL.Params()).score(real, None)[0]
    print(f"stacked digits (26,000 real): modes {modes:.0f} of 1000, mode_kl {kl:.4f}")


if __name__ == "__main__":
    main()
