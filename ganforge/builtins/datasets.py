"""Built-in datasets: ``digits`` (ships with scikit-learn), ``synthetic`` and ``image_folder``.

Every dataset yields float tensors in [-1, 1] with shape ``(C, H, W)``.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..interfaces import Dataset, ImageSpec
from ..params import param
from .imaging import load_image

_size = attrs.validators.and_(attrs.validators.ge(4), attrs.validators.le(1024))
_channels = attrs.validators.in_([1, 3])


class DigitsDataset(Dataset):
    """The 1,797 8x8 handwritten digits that scikit-learn ships, resized; no download."""

    @attrs.frozen
    class Params:
        """Output size and channels of the digits."""

        image_size: int = param(32, "side of the square output images", validator=_size)
        channels: int = param(1, "1 (grey) or 3 (grey repeated)", validator=_channels)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # [0, 1]
        images = F.interpolate(images, size=(params.image_size,) * 2, mode="bilinear",
                               align_corners=False, antialias=True).clamp_(0.0, 1.0)
        self.images = (images * 2.0 - 1.0).expand(-1, params.channels, -1, -1).contiguous()
        #: Class labels 0-9, for evaluation tools such as the linear probe.
        self.targets = torch.from_numpy(digits.target).long()

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class SyntheticDataset(Dataset):
    """Procedural images (a coloured disc and square on a gradient), seeded per index.

    Needs no files; for tests, benchmarks and smoke runs. Image ``i`` depends only on
    ``seed`` and ``i``.
    """

    @attrs.frozen
    class Params:
        """Size, shape and seed of the generated set."""

        count: int = param(1024, "number of images", validator=attrs.validators.gt(0))
        image_size: int = param(32, "side of the square images", validator=_size)
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
        g = torch.Generator().manual_seed(p.seed * 1_000_003 + index)
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


class ImageFolderDataset(Dataset):
    """Every image file under ``root`` (recursively, sorted), resized and center-cropped."""

    @attrs.frozen
    class Params:
        """Where the images are and how to shape them."""

        root: str = param(doc="folder searched recursively for images")
        image_size: int = param(64, "shorter side resized to this, then center crop",
                                validator=_size)
        channels: int = param(3, "1 (grey) or 3 (RGB)", validator=_channels)
        extensions: tuple[str, ...] = param(
            (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"),
            "file name endings that count as images (case-insensitive)")

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise DataError(f"image_folder: root {str(root)!r} is not a folder")
        suffixes = {e.lower() for e in params.extensions}
        self.files = sorted(p for p in root.rglob("*") if p.is_file()
                            and p.suffix.lower() in suffixes)
        if not self.files:
            raise DataError(f"image_folder: no images ({', '.join(sorted(suffixes))}) "
                            f"under {str(root)!r}")

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_image(self.files[index], self.params.image_size, self.params.channels)
