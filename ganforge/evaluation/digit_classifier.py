"""The digit classifier behind the ``digits`` extractor and the digit metrics (``modes``,
``mode_kl``, ``digits_is``, ``class_accuracy``): which digit each channel of an image shows,
and how sure it is.

Trained on scikit-learn's handwritten digits exactly as the ``digits`` dataset yields them at
the images' size: each channel is average-pooled back to the digits' own 8x8 grid and fed to
a one-hidden-layer perceptron (256 ReLU units, softmax output) fitted by scikit-learn's
``MLPClassifier`` with a fixed seed, on the digits and shifted and noisy copies of them
(:func:`augmented`). 99.1% accuracy on held-out digits (5-fold cross-validation); fitting
takes a few seconds on a CPU, and inference runs in PyTorch on
the images' own device (the fitted weights are copied into tensors), so judging 26,000
stacked images is a few matrix products. The fit is kept in the user cache
(``<cache>/digit_classifier/``): later processes load it instead of fitting again.

Stacked digits (three digits as the RGB channels) are judged channel by channel, as the
Stacked MNIST protocol does (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018):
the mode of an image is ``100 * d_red + 10 * d_green + d_blue``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from ..core.cache import user_cache_dir
from ..io.keyed_cache import load_keyed, store_keyed

#: What the classifier's protocol name records: change it whenever the fit changes.
CLASSIFIER_NAME = "digits-mlp256-v2"
#: The digits' own grid, which every channel is pooled to before classification.
GRID = 8
#: Digits 0-9.
DIGITS = 10
#: The perceptron's hidden units.
HIDDEN = 256


@attrs.frozen
class DigitScores:
    """What the classifier makes of a batch of images (channels averaged to grey)."""

    #: The predicted digit of each image.
    predicted: np.ndarray
    #: The probability of the predicted digit, per image.
    confidence: np.ndarray

    def accuracy(self, wanted: int | np.ndarray) -> float:
        """Share of images classified as ``wanted`` (a digit, or one per image)."""
        return float(np.mean(self.predicted == wanted))

    def coverage(self, min_share: float = 0.02) -> int:
        """Digits drawn in at least ``min_share`` of the images (mode coverage; 10 is all)."""
        counts = np.bincount(self.predicted, minlength=DIGITS)
        return int(np.sum(counts >= min_share * len(self.predicted)))


def pooled(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] ``(N, C, H, W)`` as ``(N, C, 64)``: each channel area-averaged to
    the digits' 8x8 grid."""
    n, c = images.shape[:2]
    return F.adaptive_avg_pool2d(images.float(), GRID).reshape(n, c, GRID * GRID)


def augmented(images: torch.Tensor, targets: torch.Tensor, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set of the classifier: the digits, the digits shifted by a sixteenth of
    their side in each of four directions, and the digits with Gaussian noise (std 0.15,
    seeded): six times the 1,797 digits. Without them the classifier, fitted on so few
    images, is unsure of images a little off the digits' grid or with a grey background
    (98.2% held-out accuracy, against 99.1% with them)."""
    shift = max(1, images.shape[-1] // 16)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    variants = [images, *(torch.roll(images, (dy, dx), (2, 3)) for dy, dx in
                          ((0, -shift), (0, shift), (-shift, 0), (shift, 0))),
                (images + 0.15 * noise).clamp(-1.0, 1.0)]
    return torch.cat(variants), targets.repeat(len(variants))


def _fit(image_size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Fit the perceptron on the digits at ``image_size`` with ``seed``: a few seconds."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from ..datasets.digits import DigitsDataset

    data = DigitsDataset(DigitsDataset.Params(image_size=image_size, channels=1))
    images, targets = augmented(data.images, data.targets, seed)
    model = MLPClassifier((HIDDEN,), max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(pooled(images)[:, 0].numpy(), targets.numpy())
    if list(model.classes_) != list(range(DIGITS)):  # pragma: no cover - sklearn's data
        raise RuntimeError("the digits classifier did not see all ten digits")
    return model.coefs_, model.intercepts_


def cache_key(image_size: int, seed: int) -> dict[str, Any]:
    """What a cached fit is keyed by: the classifier's version, the fit's inputs and the
    libraries that computed it (another scikit-learn may fit other weights)."""
    import sklearn

    return {"classifier": CLASSIFIER_NAME, "image_size": image_size, "seed": seed,
            "sklearn": sklearn.__version__, "numpy": np.__version__}


def cache_path(image_size: int, seed: int) -> Path:
    """Where the fit of ``(image_size, seed)`` is kept: ``<user cache>/digit_classifier/``."""
    return user_cache_dir("digit_classifier") / \
        f"{CLASSIFIER_NAME}-seed{seed}-size{image_size}.safetensors"


@functools.lru_cache(maxsize=8)
def fitted(image_size: int, seed: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The perceptron's weights and biases fitted on the digits at ``image_size`` with
    ``seed``: a pure function of both, so fitted once (a few seconds) and kept in the user
    cache (:func:`cache_path`, keyed by :func:`cache_key`) and in the process. A cache file
    that cannot be read, or was fitted by other libraries, is fitted again and replaced."""
    path, key = cache_path(image_size, seed), cache_key(image_size, seed)
    names = ("w1", "w2", "b1", "b2")
    cached = load_keyed(path, key, names)
    if cached is not None and cached["w1"].shape == (GRID * GRID, HIDDEN) and \
            cached["w2"].shape == (HIDDEN, DIGITS):
        return (cached["w1"], cached["w2"]), (cached["b1"], cached["b2"])
    coefs, intercepts = _fit(image_size, seed)
    weights = tuple(torch.from_numpy(np.asarray(w, dtype=np.float32)) for w in coefs)
    biases = tuple(torch.from_numpy(np.asarray(b, dtype=np.float32)) for b in intercepts)
    store_keyed(path, key, dict(zip(names, (*weights, *biases), strict=True)))
    return weights, biases


class DigitClassifier:
    """The perceptron fitted on ``digits`` at ``image_size`` (pooled to 8x8).

    :meth:`probabilities` gives ``(N, C, 10)`` per-channel digit probabilities of images of
    that size; :meth:`score` judges images as grey (channels averaged)."""

    def __init__(self, image_size: int = 32, seed: int = 0) -> None:
        self.image_size = image_size
        self.seed = seed
        self._weights, self._biases = fitted(image_size, seed)

    @property
    def name(self) -> str:
        """The protocol's name: network, fit seed and input size."""
        return f"{CLASSIFIER_NAME}-seed{self.seed}/avgpool{GRID}-from{self.image_size}"

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Per-channel digit probabilities ``(N, C, 10)`` of images in [-1, 1],
        ``(N, C, S, S)`` with ``S`` the classifier's image size."""
        if images.dim() != 4 or images.shape[-1] != self.image_size or \
                images.shape[-2] != self.image_size:
            raise ValueError(f"the digit classifier takes {self.image_size}x"
                             f"{self.image_size} images, got shape {tuple(images.shape)}")
        x = pooled(images)
        (w1, w2), (b1, b2) = ([w.to(x.device) for w in self._weights],
                              [b.to(x.device) for b in self._biases])
        return torch.softmax(torch.relu(x @ w1 + b1) @ w2 + b2, dim=-1)

    def score(self, images: torch.Tensor) -> DigitScores:
        """Classify images in [-1, 1], ``(N, C, S, S)``, as grey (channels averaged)."""
        grey = images.float().mean(dim=1, keepdim=True)
        p = self.probabilities(grey)[:, 0].cpu()
        confidence, predicted = p.max(dim=1)
        return DigitScores(predicted.numpy(), confidence.numpy())
