"""``digits``: the 1,797 8x8 handwritten digits that scikit-learn ships, labelled 0-9; no
download."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from ..interfaces import Dataset, ImageSpec
from ..params import param
from .common import channels_validator, image_size_validator


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
