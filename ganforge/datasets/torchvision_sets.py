"""``cifar10``, ``mnist``, ``svhn`` and ``celeba``: torchvision's standard sets with
ganforge's preprocessing (shorter side resized, center crop, [-1, 1]) and an explicit
``download`` switch. Offline, a missing set is an error that says which files to put where.

``cifar10``, ``mnist`` and ``svhn`` are labelled (10 classes: items are ``(image, label)``
pairs); ``celeba`` is not (its ``targets`` are identities, kept for evaluation tools, not
classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch
from torchvision.transforms.v2 import functional as TF

from ..core.errors import DataError
from ..core.interfaces import ImageSpec
from ..core.params import param
from .common import Uint8ImageDataset, channels_validator, image_size_validator, in_memory_param
from .decoding import resize_center_crop


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _TorchvisionDataset(Uint8ImageDataset):
    """Shared wrapper; subclasses say which torchvision class and files they need."""

    #: Human name, torchvision class name, and where the files go (relative to root).
    title: ClassVar[str]
    tv_class: ClassVar[str]
    layout: ClassVar[str]
    source_url: ClassVar[str]
    #: How many classes the items are labelled with (0: unlabelled items).
    class_count: ClassVar[int] = 10

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        import torchvision.datasets as tvd

        root = Path(params.root).expanduser()
        cls = getattr(tvd, self.tv_class)
        try:
            self.inner = cls(str(root), download=params.download, **self.split_kwargs(params))
        except RuntimeError as exc:
            if params.download:
                raise DataError(f"{self.name()}: download failed ({_one_line(exc)}); "
                                f"{self._hint(root)}") from None
            raise DataError(f"{self.name()}: no {self.title} files under {str(root)!r}; "
                            f"{self._hint(root)}, or set dataset.download = true") from None
        except OSError as exc:  # URLError and friends: no network
            raise DataError(f"{self.name()}: cannot download {self.title} ({_one_line(exc)}); "
                            f"{self._hint(root)}") from None
        #: One int label per image (the class, or CelebA's identity), for the items'
        #: labels and evaluation tools such as the linear probe.
        self.targets = torch.as_tensor(self._targets()).long().reshape(-1)

    def name(self) -> str:
        return type(self).__name__.removesuffix("Dataset").lower()

    def _hint(self, root: Path) -> str:
        return f"put {self.layout} under {str(root)!r} (from {self.source_url})"

    def split_kwargs(self, params: Any) -> dict[str, Any]:
        return {"train": params.split == "train"}

    def _targets(self) -> Any:
        return self.inner.targets

    @classmethod
    def image_spec_for(cls, params: Any) -> ImageSpec:
        return ImageSpec(channels=params.channels, size=params.image_size,
                         classes=cls.class_count)

    def __len__(self) -> int:
        return len(self.inner)

    def uint8_item(self, index: int) -> torch.Tensor:
        image = self.inner[index][0]
        image = image.convert("L" if self.params.channels == 1 else "RGB")
        return resize_center_crop(TF.pil_to_tensor(image), self.params.image_size,
                                  f"{self.title} #{index}")

    def item_label(self, index: int) -> int | None:
        return int(self.targets[index]) if self.class_count else None

    @property
    def residency(self) -> str:
        """The ``in_memory`` param of the sets torchvision holds as one array (CIFAR-10,
        MNIST: ``auto``, on the training device when they fit); ``none`` for the others."""
        return str(self.params.in_memory) if self.native_size else "none"

    #: The side of the images torchvision holds in ``inner.data`` (0: files read per
    #: item), and how many channels they have.
    native_size: ClassVar[int] = 0
    native_channels: ClassVar[int] = 3

    def resident_images(self) -> torch.Tensor | None:
        """``inner.data`` as uint8 NCHW, when the recipe asks for the images as they are
        stored (their own size and channels: nothing to resize or convert), else None
        (then the loader reads them item by item)."""
        p = self.params
        if not self.native_size or (p.image_size, p.channels) != (self.native_size,
                                                                  self.native_channels):
            return None
        data = torch.as_tensor(self.inner.data)
        return (data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)).contiguous()

    def resident_labels(self) -> torch.Tensor | None:
        return self.targets if self.class_count else None


_split = attrs.validators.in_(["train", "test"])


class CIFAR10Dataset(_TorchvisionDataset):
    """CIFAR-10 (60,000 32x32 colour images in 10 classes) through torchvision."""

    title, tv_class = "CIFAR-10", "CIFAR10"
    layout = "cifar-10-python.tar.gz or its extracted cifar-10-batches-py/ folder"
    source_url = "https://www.cs.toronto.edu/~kriz/cifar.html"
    native_size = 32

    @attrs.frozen
    class Params:
        """Where CIFAR-10 is, which split, and how to shape it."""

        root: str = param("data/cifar10", "folder holding cifar-10-batches-py/")
        split: str = param("train", "'train' (50,000) or 'test' (10,000)", validator=_split)
        image_size: int = param(32, "output size", validator=image_size_validator)
        channels: int = param(3, "1 or 3", validator=channels_validator)
        download: bool = param(False, "download into root when missing (needs internet)")
        hflip: bool = param(False, "mirror images left-right at random during training")
        in_memory: str = in_memory_param()


class MNISTDataset(_TorchvisionDataset):
    """MNIST (70,000 28x28 handwritten digits) through torchvision."""

    title, tv_class = "MNIST", "MNIST"
    layout = "MNIST/raw/train-images-idx3-ubyte.gz and the other three raw files"
    source_url = "https://yann.lecun.com/exdb/mnist/ or a mirror"
    native_size, native_channels = 28, 1

    @attrs.frozen
    class Params:
        """Where MNIST is, which split, and how to shape it."""

        root: str = param("data/mnist", "folder holding MNIST/raw/")
        split: str = param("train", "'train' (60,000) or 'test' (10,000)", validator=_split)
        image_size: int = param(32, "output size (28 is resized)", validator=image_size_validator)
        channels: int = param(1, "1 or 3", validator=channels_validator)
        download: bool = param(False, "download into root when missing (needs internet)")
        hflip: bool = param(False, "mirror images left-right at random (rarely wanted)")
        in_memory: str = in_memory_param()


class CelebADataset(_TorchvisionDataset):
    """CelebA aligned faces (202,599 images) through torchvision."""

    title, tv_class = "CelebA", "CelebA"
    layout = ("celeba/img_align_celeba/ (from img_align_celeba.zip) and celeba/"
              "list_eval_partition.txt, list_attr_celeba.txt, identity_CelebA.txt, "
              "list_bbox_celeba.txt, list_landmarks_align_celeba.txt")
    source_url = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
    class_count = 0  # identities are not classes: items are unlabelled images

    @attrs.frozen
    class Params:
        """Where CelebA is, which split, and how to shape it."""

        root: str = param("data/celeba", "folder holding celeba/")
        split: str = param("train", "'train', 'valid', 'test' or 'all'",
                           validator=attrs.validators.in_(["train", "valid", "test", "all"]))
        image_size: int = param(64, "shorter side resized, then center crop",
                                validator=image_size_validator)
        channels: int = param(3, "1 or 3", validator=channels_validator)
        download: bool = param(False, "download into root when missing (needs internet)")
        hflip: bool = param(False, "mirror images left-right at random during training")

    def split_kwargs(self, params: Any) -> dict[str, Any]:
        return {"split": params.split, "target_type": "identity"}

    def _targets(self) -> Any:
        return self.inner.identity.flatten()


class SVHNDataset(_TorchvisionDataset):
    """SVHN street-view house numbers (32x32 colour digits, labelled 0-9) through
    torchvision."""

    title, tv_class = "SVHN", "SVHN"
    layout = "train_32x32.mat / test_32x32.mat / extra_32x32.mat"
    source_url = "http://ufldl.stanford.edu/housenumbers/"

    @attrs.frozen
    class Params:
        """Where SVHN is, which split, and how to shape it."""

        root: str = param("data/svhn", "folder holding the .mat files")
        split: str = param("train", "'train' (73,257), 'test' (26,032) or 'extra' (531,131)",
                           validator=attrs.validators.in_(["train", "test", "extra"]))
        image_size: int = param(32, "output size", validator=image_size_validator)
        channels: int = param(3, "1 or 3", validator=channels_validator)
        download: bool = param(False, "download into root when missing (needs internet)")
        hflip: bool = param(False, "mirror images left-right at random (rarely wanted)")

    def split_kwargs(self, params: Any) -> dict[str, Any]:
        return {"split": params.split}

    def _targets(self) -> Any:
        return self.inner.labels
