"""The README's first command, shortened: does the quickstart learn digits?

"Looks like digits" is measured, not eyeballed: generated images are reduced to the 8x8
format of scikit-learn's digits, then compared with the real digits by the Fréchet distance
of their pixel statistics, and classified by a logistic regression trained on real digits
to check that most classes appear. Measured on the development machine (2 cores), 300
steps give FD 900-1040 (depending on the speed switches: fp32 or bf16, fused or foreach
Adam) against about 2930 for the untrained generator, and 8 of 10 classes; after 150
steps the FD is still that of an untrained generator, so the thresholds below can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ganforge.training.build import build_networks
from ganforge.training.inference import load_generator
from ganforge.training.samples import generate


def as_sklearn_digits(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] images -> the 8x8, 0..16 features of sklearn's digits."""
    x = F.adaptive_avg_pool2d(images, 8)
    return ((x + 1) / 2 * 16).clamp(0, 16).flatten(1).numpy()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    # Border pixels of the digits are always 0: a small ridge keeps the covariances regular.
    ridge = 1e-3 * np.eye(a.shape[1])
    s1, s2 = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_quickstart_learns_digits(quickstart_run: Path, plugins) -> None:
    out = quickstart_run
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step-0000100.png", "step-0000200.png", "step-0000300.png"]

    digits = load_digits()
    real = digits.data
    generator, recipe, step = load_generator(out / "checkpoints" / "step-0000300.safetensors",
                                             plugins.registry)
    z = generator.sample_latent(1000, torch.Generator().manual_seed(0))
    trained = as_sklearn_digits(generate(generator, z))
    untrained_generator, _ = build_networks(recipe, plugins.registry)
    untrained = as_sklearn_digits(generate(untrained_generator, z))

    fd_trained, fd_untrained = frechet(trained, real), frechet(untrained, real)
    assert fd_trained < 0.5 * fd_untrained, (fd_trained, fd_untrained)

    classifier = LogisticRegression(max_iter=2000).fit(real, digits.target)
    counts = np.bincount(classifier.predict(trained), minlength=10)
    assert (counts >= 20).sum() >= 7, counts
