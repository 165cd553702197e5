"""A feature extractor for metrics: colour statistics of each image, no weights."""

from __future__ import annotations

import attrs
import torch
from ganforge import FeatureExtractor, param
from torch.nn import functional as F


class ColourStatistics(FeatureExtractor):
    """Each channel's mean and standard deviation over a ``grid`` x ``grid`` tiling of the
    image, as features ``(N, 2 * C * grid²)``: a quick, weightless extractor for metrics
    (``extractor = "<plugin>:colour_stats"`` in an ``[eval.metrics.<label>]`` table). A real
    extractor loads pinned weights in :meth:`load` and puts their version in :attr:`name`
    (part of the key of cached real-image features)."""

    @attrs.frozen
    class Params:
        """The tiling."""

        grid: int = param(4, "tiles per side (features: 2 x channels x grid²)",
                          validator=[attrs.validators.gt(0), attrs.validators.le(32)])

    @property
    def name(self) -> str:
        return f"colour-stats-{self.params.grid}x{self.params.grid}/v1"

    @property
    def resize(self) -> str:
        return f"area average to {self.params.grid}x{self.params.grid} tiles"

    def load(self, device: torch.device) -> None:
        """Nothing to load: the features need no weights."""

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = images.float()
        grid = self.params.grid
        mean = F.adaptive_avg_pool2d(x, grid)
        square = F.adaptive_avg_pool2d(x * x, grid)
        std = (square - mean * mean).clamp_min(0.0).sqrt()
        return torch.cat([mean.flatten(1), std.flatten(1)], dim=1), None  # no class logits
