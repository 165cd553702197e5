"""Abstract base classes of the component kinds.

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

from .callback import Callback
from .components import Component, ComponentState, ImageSpec, Requirement, requires
from .errors import UsageError
from .metric_kinds import FeatureExtractor, FeatureSet, Metric
from .params import at_most, param

__all__ = [
    "Augment", "BASE_CLASSES", "Callback", "Component", "ComponentState", "Dataset",
    "Discriminator", "FeatureExtractor", "FeatureSet", "Generator", "ImageSpec",
    "LABEL_KEYWORDS_FIX", "Loss", "Metric", "Optimizer", "Regularizer", "RegularizerParams",
    "Requirement", "Scheduler", "is_conditional", "loss_takes_labels", "loss_takes_real",
    "missing_label_keywords", "requires", "resolve_image_spec",
]


def resolve_image_spec(name: str, image_size: int | None, channels: int | None,
                       dataset: ImageSpec | None) -> ImageSpec:
    """Merge a network's own ``image_size``/``channels`` params with the dataset's spec.

    ``None`` means "take it from the dataset"; a value that disagrees with the dataset is an
    error, because the networks would not fit the data. A network's ``image_size`` is its
    height; the width is the dataset's (square without a dataset).
    """
    size = image_size if image_size is not None else (dataset.size if dataset else None)
    chans = channels if channels is not None else (dataset.channels if dataset else None)
    if size is None or chans is None:
        raise UsageError(f"{name}: image_size and channels are not set and no dataset gives them")
    if dataset is not None and (size, chans) != (dataset.size, dataset.channels):
        raise UsageError(
            f"{name}: builds {chans}x{size}x{size} images but the dataset gives "
            f"{dataset.channels}x{dataset.pixels()}"
        )
    return ImageSpec(channels=chans, size=size, classes=dataset.classes if dataset else 0,
                     width=dataset.width if dataset else size)


def is_conditional(network: object) -> bool:
    """True when ``network`` (a generator or discriminator) takes class labels."""
    return bool(getattr(network, "conditional", False))


class Generator(nn.Module, Component, metaclass=abc.ABCMeta):
    """Maps latents ``z`` to images in [-1, 1], shape ``(N, C, H, W)``.

    Constructed as ``cls(params, image_spec=spec)`` where ``spec`` is the dataset's
    :class:`ImageSpec`.

    **Conditional generators** set :attr:`conditional` to True and are called as
    ``G(z, y)`` with ``y`` either class indices (``int64``, shape ``(N,)``, values in
    ``[0, image_spec.classes)``) or class weights (float, shape ``(N, classes)``: one-hot
    rows, or mixtures of them when a walk goes from one class to another). Unconditional
    generators (the default) are called as ``G(z)``, exactly as before labels existed.
    """

    #: True when ``forward`` takes class labels as its second argument.
    conditional: ClassVar[bool] = False

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
        """Map latents to images in [-1, 1] (a conditional generator adds a second
        parameter, the labels: ``forward(self, z, y)``)."""


class Discriminator(nn.Module, Component, metaclass=abc.ABCMeta):
    """Maps images to raw logits of shape ``(N,)``; the sigmoid belongs to the loss.

    Constructed as ``cls(params, image_spec=spec)``. A **conditional** discriminator sets
    :attr:`conditional` and is called as ``D(images, y)`` with ``y`` class indices
    (``int64``, shape ``(N,)``); an unconditional one as ``D(images)``.
    """

    #: True when ``forward`` takes class labels as its second argument.
    conditional: ClassVar[bool] = False
    #: True when built with an auxiliary classifier head (ACGAN): ``forward`` then returns
    #: ``(N, 1 + classes)``, the adversarial logit in column 0 and the class logits after
    #: it, and only a loss that reads them (``Loss.reads_class_logits``) may train it.
    aux_classifier: ClassVar[bool] = False

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return one raw logit per image, shape ``(N,)`` (a conditional discriminator adds
        a second parameter, the labels: ``forward(self, images, y)``)."""


class Loss(Component):
    """The adversarial objective. It receives D itself, so gradient penalties fit.

    The ``discriminator`` a loss receives is always called as ``discriminator(images,
    labels)``: it passes the labels on when the recipe's D is conditional and drops them
    otherwise, so one loss serves both. A loss that declares the keyword arguments
    ``real_labels``/``fake_labels`` receives the batch's class labels (``int64``, shape
    ``(N,)``; None on an unlabelled dataset); an auxiliary-classifier loss needs them
    (:func:`loss_takes_labels`). A loss whose G objective compares the fakes with real
    images (a relativistic loss) adds a ``real`` keyword to ``generator_loss`` (and
    ``real_labels`` if it takes labels): it receives the real batch of the step's last D
    update (:func:`loss_takes_real`). A
    loss written before labels existed (``discriminator_loss(D, real, fake)``, calling
    ``discriminator(images)``) keeps working for unconditional networks.
    """

    #: True for a loss that uses the labels itself (an auxiliary classifier): the trainer
    #: then draws fake classes even when neither network is conditional. A loss that only
    #: passes labels on to D leaves it False, so an unconditional run draws no labels.
    needs_labels: ClassVar[bool] = False
    #: True for a loss that reads the class logits of a discriminator built with an
    #: auxiliary classifier head (``Discriminator.aux_classifier``: outputs ``(N, 1 +
    #: classes)``); every other loss receives ``(N,)`` logits.
    reads_class_logits: ClassVar[bool] = False

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss D minimises; ``real`` and ``fake`` go through D separately. (A loss
        that takes labels adds ``*, real_labels=None, fake_labels=None``.)"""

    @abc.abstractmethod
    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """Scalar loss G minimises. (A loss that takes labels adds ``*,
        fake_labels=None``.)"""


def loss_takes_real(loss: Loss) -> bool:
    """True when ``loss.generator_loss`` takes the real batch (a ``real`` keyword, and then
    ``real_labels`` too when it takes labels): a relativistic loss compares fakes with it."""
    import inspect

    try:
        return "real" in inspect.signature(loss.generator_loss).parameters
    except (TypeError, ValueError):
        return False


def loss_takes_labels(loss: Loss | type[Loss]) -> bool:
    """True when the two methods of ``loss`` (an instance or the class) take the
    ``real_labels``/``fake_labels`` keywords."""
    import inspect

    try:
        d_params = inspect.signature(loss.discriminator_loss).parameters
        g_params = inspect.signature(loss.generator_loss).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return {"real_labels", "fake_labels"} <= d_params.keys() and "fake_labels" in g_params


#: What a loss adds to take labels (and so train a conditional discriminator).
LABEL_KEYWORDS_FIX = ("give discriminator_loss the keywords `*, real_labels=None, "
                      "fake_labels=None` and generator_loss `*, fake_labels=None`, and pass "
                      "them on as discriminator(images, labels)")


def missing_label_keywords(loss: Loss | type[Loss]) -> list[str]:
    """The label keywords ``loss`` lacks, as ``method(keyword)``; empty when it takes
    labels (:func:`loss_takes_labels`)."""
    import inspect

    wanted = {"discriminator_loss": ("real_labels", "fake_labels"),
              "generator_loss": ("fake_labels",)}
    missing = []
    for method, keywords in wanted.items():
        try:
            params = inspect.signature(getattr(loss, method)).parameters
        except (AttributeError, TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        missing += [f"{method}({k})" for k in keywords if k not in params]
    return missing


class Optimizer(Component):
    """Builds a ``torch.optim.Optimizer`` for one network's parameters."""

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        """Return a torch optimizer over ``parameters`` living on ``device``."""


class Scheduler(Component):
    """A learning-rate schedule for one optimizer (``[schedule.generator]``,
    ``[schedule.discriminator]``).

    :meth:`factor` is the multiplier of the optimizer's base learning rate at a step. The
    trainer sets ``lr = base_lr * factor(step, total)`` before every training step, so a
    schedule that is a pure function of the step resumes exactly with no state of its own
    (one that keeps state uses :meth:`Component.component_state`).
    """

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def factor(self, step: int, total: int) -> float:
        """Multiplier of the base learning rate for step ``step`` (1-based) of ``total``."""


@attrs.frozen
class RegularizerParams:
    """The params every regularizer has (its own ``Params`` subclass this one): the
    ``weight`` of its penalty and the lazy interval ``every``."""

    weight: float = param(10.0, "weight of the penalty in D's loss",
                          validator=attrs.validators.ge(0.0))
    every: int = param(1, "lazy regularization: apply on every k-th step only, with the "
                       "weight multiplied by k (StyleGAN2); 1: every step",
                       validator=[attrs.validators.gt(0), at_most(10**6)])


class Regularizer(Component):
    """A term added to D's objective, or a constraint on D's weights
    (``[regularizers.<label>]``, any number per recipe).

    :meth:`penalty` returns the **unweighted** penalty (a scalar tensor) for one D update;
    the training step adds ``weight * every * penalty`` to D's loss on the steps where
    ``step % every == 0`` (StyleGAN2's lazy regularization) and logs the unweighted value
    as ``reg/<label>``. It receives the plain discriminator (not compiled, not wrapped in
    DDP: gradients of D with respect to its input need double backward, which neither
    supports), called as ``discriminator(images, labels)`` like a loss's, and the random
    generator of the step (checkpointed, so resume is exact). Penalties are computed in
    fp32, outside autocast. A constraint that is no loss term (WGAN's weight clipping)
    returns None from :meth:`penalty` and acts in :meth:`after_update`.

    ``Params`` must subclass :class:`RegularizerParams`.
    """

    def __init__(self, params: Any) -> None:
        self.params = params

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor | None:
        """The unweighted penalty of one D update (a scalar), or None for a constraint.
        ``real``/``fake`` are the batches D's loss saw (``fake`` detached)."""
        return None

    def after_update(self, discriminator: nn.Module) -> None:  # noqa: B027 - optional
        """Called after every D optimizer step (a constraint on D's weights). Default:
        nothing."""


class Augment(Component):
    """Differentiable augmentation of every image D sees (``[augment]``): real and fake,
    in D's update and in G's, on the device, with no host synchronisation (DiffAugment,
    ADA).

    :meth:`__call__` transforms a batch with the step's checkpointed random generator. An
    adaptive augmentation (ADA) also watches D's logits on the real batch
    (:meth:`observe_real_logits`) and keeps its probability as component state. The
    default augmentation, ``none``, sets :attr:`changes_images` False, and the step then
    leaves D's inputs (and its random stream) exactly as without augmentation.
    """

    #: False for the identity (``none``): the step does not wrap D at all.
    changes_images: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.params = params

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch (same shape), differentiable with respect to ``images``."""

    def observe_real_logits(self, logits: torch.Tensor) -> None:  # noqa: B027 - optional
        """D's logits (``(N,)``, detached) on the augmented real batch of a D update.
        Default: nothing."""


class Dataset(torch.utils.data.Dataset, Component, metaclass=abc.ABCMeta):
    """A map-style torch dataset of float images in [-1, 1], shape ``(C, H, W)``.

    :meth:`image_spec_for` gives the image shape, and the number of classes, from the
    params alone, without touching any data, so a checkpoint can rebuild its generator with
    nothing but the recipe.

    **Labels.** A dataset whose spec has ``classes > 0`` returns ``(image, label)`` pairs
    from ``__getitem__`` (``label`` an int in ``[0, classes)``); one without classes returns
    the image alone. Either may return a :class:`~ganforge.datasets.policy.Skipped` marker
    instead under ``on_error = "skip"``.
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

    @property
    def classes(self) -> int:
        """How many classes the images are labelled with (0: unlabelled)."""
        return self.image_spec.classes

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Any:
        """The image at ``index`` (float, [-1, 1], CHW), ``(image, label)`` when the
        dataset has classes, or a :class:`ganforge.datasets.policy.Skipped` marker under
        ``on_error = "skip"``."""

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random augmentation of a whole batch, on the training device.

        The trainer passes its own checkpointed generator, so augmented runs still resume
        exactly. The default is no augmentation.
        """
        return images

    def resident_images(self) -> torch.Tensor | None:
        """The whole dataset as one NCHW tensor when it can be held in memory, else None:
        uint8 (scaled to [-1, 1] on the device, batch by batch) or float32 already in
        [-1, 1]. Called only when the trainer holds the set on its device (see
        :attr:`residency`), so a dataset may build the tensor here."""
        return None

    def resident_labels(self) -> torch.Tensor | None:
        """The class labels (``int64``, shape ``(N,)``) of :meth:`resident_images`, when the
        dataset has classes, else None."""
        return None

    @property
    def residency(self) -> str:
        """``"none"`` (read per item through the data loader), ``"host"`` (held whole in
        host memory, read through the loader), ``"device"`` (held whole on the training
        device and indexed there, no loader) or ``"auto"`` (on the device when it fits in
        a share of the device's memory: :func:`ganforge.training.data.holds_on_device`)."""
        return "none"


BASE_CLASSES: dict[str, type] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "loss": Loss,
    "optimizer": Optimizer,
    "scheduler": Scheduler,
    "regularizer": Regularizer,
    "augment": Augment,
    "dataset": Dataset,
    "metric": Metric,
    "extractor": FeatureExtractor,
    "callback": Callback,
}
