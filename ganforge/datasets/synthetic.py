"""``synthetic``: procedural images for tests, benchmarks and smoke runs; no files."""

from __future__ import annotations

import functools

import attrs
import torch

from ..core.interfaces import Dataset, ImageSpec
from ..core.params import at_most, param
from ..core.seeds import derive_seed
from .common import image_size_validator, sized_spec, width_param
from .policy import Item

#: The most classes ``synthetic`` labels (each needs a disc colour of its own).
MAX_SYNTHETIC_CLASSES = 1000


@functools.lru_cache(maxsize=16)
def class_colours(classes: int, channels: int) -> torch.Tensor:
    """The disc colour of each class, shape ``(classes, channels)``, values in [-0.9, 0.9].

    A low-discrepancy sequence (Roberts' R_d: point ``k`` is ``frac(0.5 + k * alpha)`` with
    ``alpha_j = phi_d ** -(j + 1)``, ``phi_d`` the positive root of ``x ** (d + 1) = x + 1``),
    so the colours are spread evenly over the colour cube and consecutive classes are far
    apart. The same for every seed: the class, not the seed, fixes the colour.
    """
    phi = 2.0
    for _ in range(64):  # fixed point of x = (1 + x) ** (1 / (d + 1))
        phi = (1.0 + phi) ** (1.0 / (channels + 1))
    alpha = torch.tensor([phi ** -(j + 1) for j in range(channels)], dtype=torch.float64)
    k = torch.arange(classes, dtype=torch.float64).unsqueeze(1)
    unit = torch.frac(0.5 + k * alpha)
    return (unit * 1.8 - 0.9).float()


class SyntheticDataset(Dataset):
    """Procedural images (a coloured disc and square on a gradient), seeded per index.

    Needs no files; for tests, benchmarks and smoke runs. Image ``i`` depends only on
    ``seed`` and ``i``. With ``classes = K > 0`` image ``i`` has label ``i % K`` and its disc
    is painted in the class's own colour (:func:`class_colours`), everything else as in the
    unlabelled image ``i``; items are then ``(image, label)`` pairs.
    """

    @attrs.frozen
    class Params:
        """Size, shape, seed and classes of the generated set."""

        count: int = param(1024, "number of images", validator=attrs.validators.gt(0))
        image_size: int = param(32, "height of the images (and width, unless width is set)",
                                validator=image_size_validator)
        width: int | None = width_param("width of the images")
        channels: int = param(3, "number of channels", validator=attrs.validators.gt(0))
        seed: int = param(0, "seed of the procedure")
        classes: int = param(0, "label image i with class i % classes, shown as its disc's "
                             "colour (0: unlabelled)",
                             validator=attrs.validators.and_(attrs.validators.ge(0),
                                                             at_most(MAX_SYNTHETIC_CLASSES)))

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return sized_spec(params, params.classes)

    def __len__(self) -> int:
        return self.params.count

    @property
    def targets(self) -> torch.Tensor | None:
        """Every image's class label (``i % classes``), or None when unlabelled."""
        k = self.params.classes
        return torch.arange(self.params.count) % k if k else None

    def item_label(self, index: int) -> int | None:
        """The class of image ``index`` (None when unlabelled)."""
        k = self.params.classes
        return index % k if k else None

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self):
            raise IndexError(index)
        p = self.params
        g = torch.Generator().manual_seed(derive_seed(p.seed, "synthetic", index))
        ys, xs = torch.meshgrid(torch.linspace(0, 1, p.image_size),
                                torch.linspace(0, 1, p.width or p.image_size), indexing="ij")
        start, end = torch.rand(2, p.channels, 1, 1, generator=g) * 2 - 1
        direction = torch.rand(1, generator=g).item()
        ramp = direction * xs + (1 - direction) * ys
        image = start + (end - start) * ramp
        cx, cy, r = torch.rand(3, generator=g) * torch.tensor([0.6, 0.6, 0.2]) + 0.2
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < (r * 0.8) ** 2
        # Drawn even when a class colour replaces it, so that everything after it (the
        # square) is the same as in the unlabelled image.
        colour = torch.rand(p.channels, 1, 1, generator=g) * 2 - 1
        label = self.item_label(index)
        if label is not None:
            colour = class_colours(p.classes, p.channels)[label].view(p.channels, 1, 1)
        image = torch.where(disc, colour, image)
        qx, qy = torch.rand(2, generator=g) * 0.6 + 0.1
        square = (xs >= qx) & (xs < qx + 0.25) & (ys >= qy) & (ys < qy + 0.25)
        image = torch.where(square, torch.rand(p.channels, 1, 1, generator=g) * 2 - 1, image)
        image = image.clamp_(-1.0, 1.0)
        return image if label is None else (image, label)
