"""Feature extractors for metrics: the standard FID Inception network, or raw pixels.

``inception`` is what published FID/KID/IS numbers use. ``pixels`` (images area-averaged to
8x8 per channel) needs no weights and is cheap: it is meant for smoke tests and quick
comparisons between runs of one project, and its numbers are not comparable with
published FIDs. Every score records which extractor made it; nothing is substituted
silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import attrs
import torch
import torch.nn.functional as F

from ..errors import UsageError


@attrs.frozen
class FeatureSet:
    """Features (and, when the extractor has them, class logits) of a set of images."""

    features: torch.Tensor
    logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.features.shape[0]

    def head(self, n: int) -> FeatureSet:
        """The first ``n`` images' features."""
        logits = None if self.logits is None else self.logits[:n]
        return FeatureSet(self.features[:n], logits)


class FeatureExtractor(Protocol):
    """Maps images in [-1, 1] (NCHW) to features and optional logits."""

    #: Recorded in every score's protocol, and part of reference-statistics cache keys.
    name: str
    #: How images are resized before extraction, for the protocol.
    resize: str

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class PixelExtractor:
    """Area-averaged 8x8 pixels per channel as features (no weights, no logits)."""

    name = "pixels-8x8"
    resize = "area average to 8x8"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.adaptive_avg_pool2d(images.float(), 8).flatten(1), None


class InceptionExtractor:
    """The FID Inception network (TensorFlow-ported 2015-12-05 weights, pool3 features)."""

    name = "fid-inception-2015-12-05"
    resize = "bilinear to 299x299 (align_corners=False); grey images repeated to RGB"

    def __init__(self, weights: str | Path | None = None, download: bool = False,
                 device: torch.device | str = "cpu") -> None:
        from .inception import load_fid_inception

        self.device = torch.device(device)
        self.network = load_fid_inception(weights, download=download, device=self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, torch.float32)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, logits = self.network(images)
        return features.float().cpu(), logits.float().cpu()


def make_extractor(name: str, weights: str | None = None, download: bool = False,
                   device: torch.device | str = "cpu") -> FeatureExtractor:
    """Build the extractor a metric's params name."""
    if name == "inception":
        return InceptionExtractor(weights, download, device)
    if name == "pixels":
        return PixelExtractor()
    raise UsageError(f"unknown feature extractor {name!r}: use 'inception' or 'pixels'")
