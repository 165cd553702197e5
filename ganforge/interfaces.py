"""Abstract base classes of the five component kinds.

A component is a class implementing one of these, with a nested frozen attrs class
``Params`` that holds every tunable value. The trainer is written against these
interfaces only and knows no model by name.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from .errors import UsageError


@attrs.frozen
class ImageSpec:
    """Shape of the images a dataset yields and a generator must produce (NCHW)."""

    channels: int
    size: int

    def shape(self) -> tuple[int, int, int]:
        """``(channels, size, size)``."""
        return (self.channels, self.size, self.size)


@attrs.frozen
class ComponentState:
    """What a stateful component keeps across a checkpoint: tensors (stored in the
    checkpoint as ``state/<table>/<name>``) and JSON-able values (stored under its recipe
    table name). Resume gives back exactly what was saved."""

    tensors: dict[str, torch.Tensor] = attrs.field(factory=dict)
    values: dict[str, Any] = attrs.field(factory=dict)


class Component(abc.ABC):  # noqa: B024 - a marker base, the kinds add the abstract methods
    """Base of every component. ``Params`` must be a frozen attrs class.

    A component may hold **state** that must survive a checkpoint (a running statistic, a
    counter, an adaptive probability): it returns it from :meth:`component_state` and takes
    it back in :meth:`load_component_state`. The trainer tells every component the step it
    is about to train through :meth:`on_step`. All three are optional: a stateless component
    (the default) implements none of them. Networks keep their weights and buffers in
    ``state_dict`` as usual; ``component_state`` is for anything else.
    """

    Params: ClassVar[type]

    def component_state(self) -> ComponentState | None:
        """This component's state for a checkpoint, or None when it has none (default)."""
        return None

    def load_component_state(self, state: ComponentState) -> None:
        """Restore what :meth:`component_state` returned (called on resume)."""
        raise TypeError(f"{type(self).__name__} returned state from component_state() but "
                        "does not implement load_component_state()")

    def on_step(self, step: int) -> None:  # noqa: B027 - optional, empty by design
        """Called before training step ``step`` (1-based). Default: nothing."""


def resolve_image_spec(name: str, image_size: int | None, channels: int | None,
                       dataset: ImageSpec | None) -> ImageSpec:
    """Merge a network's own ``image_size``/``channels`` params with the dataset's spec.

    ``None`` means "take it from the dataset"; a value that disagrees with the dataset is an
    error, because the networks would not fit the data.
    """
    size = image_size if image_size is not None else (dataset.size if dataset else None)
    chans = channels if channels is not None else (dataset.channels if dataset else None)
    if size is None or chans is None:
        raise UsageError(f"{name}: image_size and channels are not set and no dataset gives them")
    if dataset is not None and (size, chans) != (dataset.size, dataset.channels):
        raise UsageError(
            f"{name}: builds {chans}x{size}x{size} images but the dataset gives "
            f"{dataset.channels}x{dataset.size}x{dataset.size}"
        )
    return ImageSpec(channels=chans, size=size)


class Generator(nn.Module, Component, metaclass=abc.ABCMeta):
    """Maps latents ``z`` to images in [-1, 1], shape ``(N, C, H, W)``.

    Constructed as ``cls(params, image_spec=spec)`` where ``spec`` is the dataset's
    :class:`ImageSpec`.
    """

    @property
    @abc.abstractmethod
    def latent_dim(self) -> int:
        """Size of one latent vector."""

    @property
    @abc.abstractmethod
    def image_spec(self) -> ImageSpec:
        """Shape of the images this generator produces."""

    @abc.abstractmethod
    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """Draw ``n`` latents from the prior using the seeded ``generator``."""

    @abc.abstractmethod
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents to images in [-1, 1]."""


class Discriminator(nn.Module, Component, metaclass=abc.ABCMeta):
    """Maps images to raw logits of shape ``(N,)``; the sigmoid belongs to the loss.

    Constructed as ``cls(params, image_spec=spec)``.
    """

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return one raw logit per image, shape ``(N,)``."""


class Loss(Component):
    """The adversarial objective. It receives D itself, so gradient penalties fit."""

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss D minimises; ``real`` and ``fake`` go through D separately."""

    @abc.abstractmethod
    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss G minimises."""


class Optimizer(Component):
    """Builds a ``torch.optim.Optimizer`` for one network's parameters."""

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        """Return a torch optimizer over ``parameters`` living on ``device``."""


class Dataset(torch.utils.data.Dataset, Component, metaclass=abc.ABCMeta):
    """A map-style torch dataset of float images in [-1, 1], shape ``(C, H, W)``.

    :meth:`image_spec_for` gives the image shape from the params alone, without touching
    any data, so a checkpoint can rebuild its generator with nothing but the recipe.
    """

    def __init__(self, params: Any) -> None:
        self.params = params

    @classmethod
    @abc.abstractmethod
    def image_spec_for(cls, params: Any) -> ImageSpec:
        """The :class:`ImageSpec` a dataset built from ``params`` yields."""

    @property
    def image_spec(self) -> ImageSpec:
        """The shape of this dataset's images."""
        return self.image_spec_for(self.params)

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Any:
        """The image at ``index`` (float, [-1, 1], CHW), or a
        :class:`ganforge.datasets.policy.Skipped` marker under ``on_error = "skip"``."""

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random augmentation of a whole batch, on the training device.

        The trainer passes its own checkpointed generator, so augmented runs still resume
        exactly. The default is no augmentation.
        """
        return images

    def resident_images(self) -> torch.Tensor | None:
        """The whole dataset as one uint8 NCHW tensor when it is held in memory, else None.

        A dataset that returns a tensor here and ``residency == "device"`` is indexed by the
        trainer directly on the training device, with no data loader at all.
        """
        return None

    @property
    def residency(self) -> str:
        """``"none"`` (read per item), ``"host"`` or ``"device"`` (held whole)."""
        return "none"


class Metric(Component):
    """Scores generated images, usually against real ones, from extracted features.

    ``Params`` must subclass :class:`ganforge.evaluation.metrics.MetricParams` (how many
    images, which feature extractor). The evaluation driver extracts features once per
    extractor and passes them to :meth:`score`.
    """

    #: True when larger values are better (Inception Score), False for distances.
    higher_is_better: ClassVar[bool] = False
    #: Whether :meth:`score` needs real-image features.
    needs_real: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def score(self, fake: Any, real: Any) -> tuple[float, dict[str, float]]:
        """The metric's value and any extra figures (e.g. a standard deviation), from
        ``FeatureSet`` objects of generated and (if ``needs_real``) real images."""


#: Base class of each kind, used by the registry to reject non-components.
BASE_CLASSES: dict[str, type] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "loss": Loss,
    "optimizer": Optimizer,
    "dataset": Dataset,
    "metric": Metric,
}
