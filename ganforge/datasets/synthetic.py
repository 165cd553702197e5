"""``synthetic``: procedural images for tests, benchmarks and smoke runs; no files."""

from __future__ import annotations

import attrs
import torch

from ..interfaces import Dataset, ImageSpec
from ..params import param
from ..seeds import derive_seed
from .common import image_size_validator


class SyntheticDataset(Dataset):
    """Procedural images (a coloured disc and square on a gradient), seeded per index.

    Needs no files; for tests, benchmarks and smoke runs. Image ``i`` depends only on
    ``seed`` and ``i``.
    """

    @attrs.frozen
    class Params:
        """Size, shape and seed of the generated set."""

        count: int = param(1024, "number of images", validator=attrs.validators.gt(0))
        image_size: int = param(32, "side of the square images", validator=image_size_validator)
        channels: int = param(3, "number of channels", validator=attrs.validators.gt(0))
        seed: int = param(0, "seed of the procedure")

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:
        return self.params.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(index)
        p = self.params
        g = torch.Generator().manual_seed(derive_seed(p.seed, "synthetic", index))
        s = p.image_size
        ys, xs = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
        start, end = torch.rand(2, p.channels, 1, 1, generator=g) * 2 - 1
        direction = torch.rand(1, generator=g).item()
        ramp = direction * xs + (1 - direction) * ys
        image = start + (end - start) * ramp
        cx, cy, r = torch.rand(3, generator=g) * torch.tensor([0.6, 0.6, 0.2]) + 0.2
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < (r * 0.8) ** 2
        image = torch.where(disc, torch.rand(p.channels, 1, 1, generator=g) * 2 - 1, image)
        qx, qy = torch.rand(2, generator=g) * 0.6 + 0.1
        square = (xs >= qx) & (xs < qx + 0.25) & (ys >= qy) & (ys < qy + 0.25)
        image = torch.where(square, torch.rand(p.channels, 1, 1, generator=g) * 2 - 1, image)
        return image.clamp_(-1.0, 1.0)
