"""Built-in feature extractors (the ``extractor`` kind): ``inception`` and ``pixels``.

``inception`` is the FID Inception network (the TensorFlow 2015-12-05 weights ported to
PyTorch, pool3 features and class logits), with the resize and normalisation of the tool
whose numbers a score should be comparable with (:mod:`ganforge.evaluation.resize`).
``pixels`` needs no weights and is meant for smoke tests; its numbers are comparable with
nothing published. ``digits`` is the digit classifier of the offline proofs (digits and
stacked digits): per-channel digit probabilities.
"""

from __future__ import annotations

import attrs
import torch

from ..core.errors import UsageError
from ..core.interfaces import FeatureExtractor
from ..core.params import param
from ..evaluation.digit_classifier import CLASSIFIER_NAME, GRID, DigitClassifier
from ..evaluation.features import InceptionExtractor, PixelExtractor
from ..evaluation.resize import RESIZE_MODES


class InceptionFeatures(FeatureExtractor):
    """The FID Inception network: 2048 pool3 features and 1008 class logits."""

    has_logits = True

    @attrs.frozen
    class Params:
        """Where the weights are and how images reach the network."""

        weights: str | None = param(None, "path of pt_inception-2015-12-05-6726825d.pth; "
                                    "unset: the user cache")
        download: bool = param(False, "fetch the weights into the cache if missing")
        resize: str = param("antialias", "to 299x299 as a tool does it: 'antialias' "
                            "(torchmetrics), 'tf1' (TF FID, torch-fidelity), 'clean' "
                            "(clean-fid) or 'pytorch_fid'",
                            validator=attrs.validators.in_(RESIZE_MODES))

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self._network: InceptionExtractor | None = None

    @property
    def name(self) -> str:
        return f"fid-inception-2015-12-05/{self.params.resize}"

    @property
    def resize(self) -> str:
        from ..evaluation.resize import RESIZE_PROTOCOLS

        return RESIZE_PROTOCOLS[self.params.resize]

    def load(self, device: torch.device) -> None:
        if self._network is None:
            p = self.params
            self._network = InceptionExtractor(p.weights, p.download, device, p.resize)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._network is None:
            self.load(images.device)
        assert self._network is not None
        return self._network(images)


class PixelFeatures(FeatureExtractor):
    """Images area-averaged to a small square per channel (no weights, no logits): smoke
    tests and quick comparisons within one project only."""

    @attrs.frozen
    class Params:
        """The side of the averaged image."""

        size: int = param(8, "side of the area-averaged image (features: size^2 x channels)",
                          validator=[attrs.validators.gt(0), attrs.validators.le(64)])

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self._pixels = PixelExtractor(params.size)

    @property
    def name(self) -> str:
        return self._pixels.name

    @property
    def resize(self) -> str:
        return self._pixels.resize

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._pixels(images)


class DigitFeatures(FeatureExtractor):
    """The digit classifier (:mod:`ganforge.evaluation.digit_classifier`): each channel's
    probabilities of the ten digits, ``(N, 10 * C)``, channel by channel. What the digit
    metrics (``modes``, ``mode_kl``, ``digits_is``, ``class_accuracy``) read; fitted on
    scikit-learn's digits at the images' size on first use (about a second), no download."""

    @attrs.frozen
    class Params:
        """The classifier's fit."""

        seed: int = param(0, "seed of the classifier's fit (part of its protocol name)",
                          validator=attrs.validators.ge(0))

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self._classifiers: dict[int, DigitClassifier] = {}

    @property
    def name(self) -> str:
        return f"{CLASSIFIER_NAME}-seed{self.params.seed}/avgpool{GRID}"

    @property
    def resize(self) -> str:
        return f"area average to {GRID}x{GRID} per channel"

    def classifier(self, image_size: int) -> DigitClassifier:
        """The classifier fitted at ``image_size`` (fitted once per size)."""
        if image_size not in self._classifiers:
            self._classifiers[image_size] = DigitClassifier(image_size, self.params.seed)
        return self._classifiers[image_size]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.shape[-1] != images.shape[-2]:
            raise UsageError(f"extractor digits: square images only, got "
                             f"{images.shape[-2]}x{images.shape[-1]}")
        p = self.classifier(images.shape[-1]).probabilities(images)
        return p.flatten(1), None
