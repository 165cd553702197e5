"""A digit classifier for judging generators trained on ``digits``: trained on scikit-learn's
handwritten digits exactly as the ``digits`` dataset yields them (same size, same
resizing), it tells which digit a generated image shows and how sure it is.

Used by the tests of the conditional quickstart (``ganforge sample CKPT --class k`` must
draw the digit k) and by ``benchmarks/quickstart_quality.py`` (what the EMA of G does to the
quickstart's samples). Images are average-pooled to the digits' own 8x8 grid and classified
by scikit-learn's logistic regression: 95.6% accuracy on a held-out 30% of the real digits
(trained on the rest), in a few hundredths of a second.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.digits import DigitsDataset


@attrs.frozen
class DigitScores:
    """What the classifier makes of a batch of images."""

    #: The predicted digit of each image.
    predicted: np.ndarray
    #: The probability of the predicted digit, per image.
    confidence: np.ndarray

    def accuracy(self, wanted: int | np.ndarray) -> float:
        """Share of images classified as ``wanted`` (a digit, or one per image)."""
        return float(np.mean(self.predicted == wanted))

    def coverage(self, min_share: float = 0.02) -> int:
        """Digits drawn in at least ``min_share`` of the images (mode coverage; 10 is all)."""
        counts = np.bincount(self.predicted, minlength=10)
        return int(np.sum(counts >= min_share * len(self.predicted)))


def pooled(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] ``(N, C, S, S)`` as grey 8x8 averages, one row per image."""
    grey = images.float().mean(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(grey, 8).reshape(images.shape[0], -1).cpu().numpy()


class DigitClassifier:
    """Logistic regression on ``digits`` at ``image_size``, pooled to 8x8 (grey)."""

    def __init__(self, image_size: int = 32, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression

        data = DigitsDataset(DigitsDataset.Params(image_size=image_size, channels=1))
        self.model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        self.model.fit(pooled(data.images), data.targets.numpy())
        self.image_size = image_size

    def score(self, images: torch.Tensor) -> DigitScores:
        """Classify images in [-1, 1], shape ``(N, C, S, S)`` (channels averaged to grey)."""
        if images.shape[-1] != self.image_size:
            raise ValueError(f"images are {images.shape[-1]} pixels wide, the classifier "
                             f"was trained at {self.image_size}")
        probabilities = self.model.predict_proba(pooled(images))
        return DigitScores(self.model.classes_[probabilities.argmax(axis=1)],
                           probabilities.max(axis=1))
