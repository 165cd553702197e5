"""``digits``: the 1,797 8x8 handwritten digits that scikit-learn ships, labelled 0-9; no
download."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from ..core.interfaces import Dataset, ImageSpec
from ..core.params import param
from .common import channels_validator, image_size_validator, in_memory_param


class DigitsDataset(Dataset):
    """The 1,797 8x8 handwritten digits that scikit-learn ships, resized; no download.

    Always labelled: items are ``(image, digit)`` pairs, 10 classes."""

    #: The digits 0-9.
    CLASSES = 10

    @attrs.frozen
    class Params:
        """Output size and channels of the digits."""

        image_size: int = param(32, "side of the square output images",
                                validator=image_size_validator)
        channels: int = param(1, "1 (grey) or 3 (grey repeated)", validator=channels_validator)
        in_memory: str = in_memory_param()

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # [0, 1]
        images = F.interpolate(images, size=(params.image_size,) * 2, mode="bilinear",
                               align_corners=False, antialias=True).clamp_(0.0, 1.0)
        self.images = (images * 2.0 - 1.0).expand(-1, params.channels, -1, -1).contiguous()
        #: Class labels 0-9 (the items' labels; also read by the linear probe).
        self.targets = torch.from_numpy(digits.target).long()

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size,
                         classes=cls.CLASSES)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.targets[index])

    @property
    def residency(self) -> str:
        """The ``in_memory`` param (``auto``: on the training device when they fit)."""
        return self.params.in_memory

    def resident_images(self) -> torch.Tensor:
        """Every digit, float32 in [-1, 1] (the items' own tensors)."""
        return self.images

    def resident_labels(self) -> torch.Tensor:
        return self.targets


class StackedDigitsDataset(Dataset):
    """Stacked digits, the mode-collapse benchmark: three of scikit-learn's digits drawn
    independently, one per RGB channel (Stacked MNIST, Metz et al. 2017; Srivastava et al.
    2017; Lin et al. 2018, with scikit-learn's 1,797 digits for MNIST's), 1,000 modes.

    Items are ``(image, mode)`` with ``mode = 100 * d_red + 10 * d_green + d_blue``, 1,000
    classes. Which digits make item ``i`` is a pure function of ``seed`` and ``size``."""

    #: 10^3 digit combinations.
    CLASSES = 1000

    @attrs.frozen
    class Params:
        """Output size, number of stacked images and the seed of their draw."""

        image_size: int = param(32, "side of the square output images",
                                validator=image_size_validator)
        size: int = param(128_000, "stacked images (128,000 in PacGAN's Stacked MNIST)",
                          validator=[attrs.validators.ge(1), attrs.validators.le(10_000_000)])
        seed: int = param(0, "seed of the digits drawn for each channel",
                          validator=[attrs.validators.ge(0), attrs.validators.lt(2**63)])
        in_memory: str = in_memory_param()

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        from ..core.seeds import derive_seed

        digits = DigitsDataset(DigitsDataset.Params(image_size=params.image_size, channels=1))
        #: The digits' images, (1797, S, S) in [-1, 1].
        self.digits = digits.images[:, 0]
        rng = torch.Generator().manual_seed(derive_seed(params.seed, "stacked digits"))
        #: Which digit image each channel of each item shows, ``(size, 3)``.
        self.picks = torch.randint(len(self.digits), (params.size, 3), generator=rng)
        picked = digits.targets[self.picks]
        #: Each item's mode, 0-999.
        self.targets = picked[:, 0] * 100 + picked[:, 1] * 10 + picked[:, 2]

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=3, size=params.image_size, classes=cls.CLASSES)

    def __len__(self) -> int:
        return self.picks.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.digits[self.picks[index]], int(self.targets[index])

    @property
    def residency(self) -> str:
        """The ``in_memory`` param (``auto``: on the training device when they fit)."""
        return self.params.in_memory

    def resident_images(self) -> torch.Tensor:
        """Every stacked image, float32 in [-1, 1], built now (``size`` x 3 x S x S)."""
        return self.digits[self.picks]

    def resident_labels(self) -> torch.Tensor:
        return self.targets
