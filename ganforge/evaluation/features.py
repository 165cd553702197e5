"""The engines behind the built-in ``extractor`` components (``ganforge/builtins/
extractors.py``): the standard FID Inception network, or raw pixels; and the feature sets
metrics score.

``inception`` is what published FID/KID/IS numbers use. ``pixels`` (images area-averaged to
8x8 per channel) needs no weights and is cheap: it is meant for smoke tests and quick
comparisons between runs of one project, and its numbers are not comparable with
published FIDs. Every score records which extractor made it; nothing is substituted
silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F

from ..core.errors import UsageError
from ..core.metric_kinds import FeatureSet  # noqa: F401  (its old home: re-exported)

T = TypeVar("T")


class ExtractorLike(Protocol):
    """What the evaluator calls: maps images in [-1, 1] (NCHW) to features and optional
    logits. The ``extractor`` components (:class:`ganforge.core.interfaces.FeatureExtractor`)
    and the engines below are such objects."""

    #: Recorded in every score's protocol, and part of reference-statistics cache keys.
    name: str
    #: How images are resized before extraction, for the protocol.
    resize: str

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class PixelExtractor:
    """Area-averaged ``size`` x ``size`` pixels per channel as features (no weights, no
    logits)."""

    size = 8
    name = "pixels-8x8"
    resize = "area average to 8x8"

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.name = f"pixels-{size}x{size}"
        self.resize = f"area average to {size}x{size}"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.adaptive_avg_pool2d(images.float(), self.size).flatten(1), None


class InceptionExtractor:
    """The FID Inception network (TensorFlow-ported 2015-12-05 weights, pool3 features).

    Images in [-1, 1] are quantised to uint8 (as a saved PNG would be), grey images are
    repeated to RGB, then resized to 299x299 and normalised to [-1, 1] as the tool the
    ``resize`` mode copies does it (:func:`.resize.prepare_for_inception`).
    """

    def __init__(self, weights: str | Path | None = None, download: bool = False,
                 device: torch.device | str = "cpu", resize: str = "antialias") -> None:
        from .inception import load_fid_inception
        from .resize import RESIZE_MODES, RESIZE_PROTOCOLS

        if resize not in RESIZE_MODES:
            raise UsageError(f"unknown resize {resize!r}: use one of {', '.join(RESIZE_MODES)}")
        self.device = torch.device(device)
        self.mode = resize
        self.name = f"fid-inception-2015-12-05/{resize}"
        self.resize = RESIZE_PROTOCOLS[resize]
        self.network = load_fid_inception(weights, download=download, device=self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from ..datasets.decoding import to_uint8
        from .inception import INPUT_SIZE
        from .resize import prepare_for_inception

        quantised = to_uint8(images.to(self.device)).float()
        x = prepare_for_inception(quantised, INPUT_SIZE, self.mode)
        features, logits = self.network(x)
        return features.float().cpu(), logits.float().cpu()
