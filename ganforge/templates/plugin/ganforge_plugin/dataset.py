"""Procedural striped images: no files, deterministic per index."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Dataset, ImageSpec, param
from ganforge.seeds import derive_seed


class StripesDataset(Dataset):
    """Sinusoidal stripes: image ``i``'s angle, frequency, phase and colour are drawn from
    a generator seeded with ``(seed, i)``, so it depends on nothing else. With ``classes =
    K > 0`` image ``i`` has label ``i % K``, shown as the stripes' angle, and items are
    ``(image, label)`` pairs."""

    @attrs.frozen
    class Params:
        """Size, shape, seed and classes of the generated set."""

        count: int = param(1024, "number of images",
                           validator=[attrs.validators.gt(0), attrs.validators.le(10**7)])
        image_size: int = param(16, "side of the square images",
                                validator=[attrs.validators.ge(4), attrs.validators.le(1024)])
        channels: int = param(3, "1 (grey) or 3 (colour)",
                              validator=attrs.validators.in_([1, 3]))
        seed: int = param(0, "seed of the procedure",
                          validator=[attrs.validators.ge(0), attrs.validators.lt(2**32)])
        classes: int = param(0, "label image i with class i % classes, shown as the angle "
                             "(0: unlabelled)",
                             validator=[attrs.validators.ge(0), attrs.validators.le(64)])

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        """The shape and classes, from the params alone (reads no data)."""
        return ImageSpec(channels=params.channels, size=params.image_size,
                         classes=params.classes)

    def __len__(self) -> int:
        return self.params.count

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        p = self.params
        if not 0 <= index < p.count:
            raise IndexError(f"index {index} out of range for {p.count} images")
        rng = torch.Generator().manual_seed(derive_seed(p.seed, "stripes", index))
        jitter, frequency, phase = torch.rand(3, generator=rng).tolist()
        colour = torch.rand(p.channels, 1, 1, generator=rng) * 0.8 + 0.2
        if p.classes:
            angle = math.pi * (index % p.classes + 0.3 * jitter) / p.classes
        else:
            angle = math.pi * jitter
        line = torch.linspace(-1.0, 1.0, p.image_size)
        ys, xs = torch.meshgrid(line, line, indexing="ij")
        wave = torch.sin(math.pi * (1 + 3 * frequency) * (xs * math.cos(angle)
                                                          + ys * math.sin(angle))
                         + 2 * math.pi * phase)
        image = (wave.unsqueeze(0) * colour).clamp(-1.0, 1.0)  # float, CHW, in [-1, 1]
        return (image, index % p.classes) if p.classes else image
