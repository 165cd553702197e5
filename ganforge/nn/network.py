"""What image generators and discriminators repeat, written once for any network plugin.

A network whose ``Params`` has the usual fields (``image_size`` and ``channels``, ``None``
meaning "the dataset's"; ``conditional``; for a generator also ``latent_dim`` and
``prior``) subclasses :class:`NetworkGenerator` or :class:`NetworkDiscriminator` instead of
:class:`ganforge.Generator` or :class:`ganforge.Discriminator` and calls
:meth:`~NetworkGenerator.setup_network` first thing in ``__init__``. It gets:

- the image shape resolved against the dataset (:func:`ganforge.resolve_image_spec`) and,
  given :class:`ImageSizes`, a dataset size the network cannot build refused as a recipe
  error on ``$.dataset.image_size``;
- ``conditional`` and ``classes`` per instance (the dataset's classes when
  ``conditional = true``, else 0, see :func:`ganforge.nn.conditioning.label_classes`);
- for a generator, ``latent_dim``, ``image_spec`` and ``sample_latent`` (the ``prior`` param
  drawn by :func:`ganforge.nn.conditioning.sample_prior`).

Nothing here adds a module, parameter or buffer: a network's ``state_dict`` is what its own
layers make it. :class:`ImageSizes` alone helps a network built for a fixed set of sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

from ..core.errors import RecipeError
from ..core.interfaces import Discriminator, Generator, ImageSpec, resolve_image_spec
from .conditioning import label_classes, sample_prior

__all__ = ["ImageSizes", "NetworkDiscriminator", "NetworkGenerator"]


@attrs.frozen
class ImageSizes:
    """The image sizes an architecture builds, and the two checks of a size.

    ``architecture`` names it in messages (``"dcgan"``); ``sizes`` are the heights it
    builds (and the widths, for square images). ``width_step``: how the architecture
    builds non-square images: None (the default) refuses them; a function of the height
    gives the number every width must be a multiple of.
    """

    architecture: str
    sizes: tuple[int, ...]
    width_step: Callable[[int], int] | None = None

    def validator(self, _instance: object, attribute: attrs.Attribute, value: int | None) -> None:
        """attrs validator of an ``image_size`` param: ``None`` (take it from the dataset)
        or one of :attr:`sizes`."""
        if value is not None and value not in self.sizes:
            raise ValueError(f"'{attribute.name}' must be one of {list(self.sizes)}: {value}")

    def check_dataset_size(self, network: str, size: int) -> None:
        """Refuse a size given by the dataset that the architecture cannot build, as a recipe
        error on ``$.dataset.image_size`` (a network's own ``image_size`` param is validated
        with the recipe, so a size that reaches the network unchecked came from the
        dataset)."""
        if size not in self.sizes:
            raise RecipeError.single("$.dataset.image_size",
                                     f"the {self.architecture} {network} builds images of "
                                     f"size {', '.join(map(str, self.sizes))} only, not "
                                     f"{size}")

    def check_dataset_width(self, network: str, spec: ImageSpec) -> None:
        """Refuse a non-square spec the architecture cannot build, as a recipe error on
        ``$.dataset.width``: any, without :attr:`width_step`; else a width that is not a
        multiple of ``width_step(height)``."""
        if spec.square:
            return
        if self.width_step is None:
            raise RecipeError.single("$.dataset.width",
                                     f"the {self.architecture} {network} builds square "
                                     f"images only, not {spec.pixels()} (height x width)")
        step = self.width_step(spec.size)
        if spec.width % step:
            raise RecipeError.single("$.dataset.width",
                                     f"the {self.architecture} {network} at height "
                                     f"{spec.size} needs a width that is a multiple of "
                                     f"{step}, not {spec.width}")


def _resolve(network: str, params: Any, image_spec: ImageSpec | None,
             sizes: ImageSizes | None) -> tuple[ImageSpec, int]:
    """The network's image spec and its number of classes, checked in this order: the
    params against the dataset, the size against ``sizes``, the classes."""
    spec = resolve_image_spec(network, params.image_size, params.channels, image_spec)
    if sizes is not None:
        sizes.check_dataset_size(network, spec.size)
        sizes.check_dataset_width(network, spec)
    return spec, label_classes(network, params.conditional, spec.classes)


class NetworkGenerator(Generator):
    """A :class:`ganforge.Generator` whose ``Params`` has ``image_size``, ``channels``,
    ``conditional``, ``latent_dim`` and ``prior`` (a :data:`ganforge.nn.conditioning.PRIORS`
    value). Subclasses call :meth:`setup_network` and implement ``forward``."""

    params: Any
    _spec: ImageSpec
    _classes: int = 0

    def setup_network(self, params: Any, image_spec: ImageSpec | None,
                      sizes: ImageSizes | None = None) -> ImageSpec:
        """Keep ``params``, resolve the image spec (refusing a size outside ``sizes``) and
        the classes; returns the spec."""
        self.params = params
        self._spec, self._classes = _resolve("generator", params, image_spec, sizes)
        return self._spec

    @property
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        """True when built with ``conditional = true``: called as ``G(z, y)``."""
        return self._classes > 0

    @property
    def classes(self) -> int:
        """How many classes the labels have (0: unconditional)."""
        return self._classes

    @property
    def latent_dim(self) -> int:
        return int(self.params.latent_dim)

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` latents from the ``prior`` param, drawn with the seeded ``generator`` only
        (so a resumed run draws the same ones)."""
        return sample_prior(self.params.prior, n, self.params.latent_dim, generator, device)


class NetworkDiscriminator(Discriminator):
    """A :class:`ganforge.Discriminator` whose ``Params`` has ``image_size``, ``channels``
    and ``conditional``. Subclasses call :meth:`setup_network` and implement ``forward``;
    the resolved spec is the attribute ``image_spec``."""

    params: Any
    image_spec: ImageSpec
    _classes: int = 0

    def setup_network(self, params: Any, image_spec: ImageSpec | None,
                      sizes: ImageSizes | None = None) -> ImageSpec:
        """Keep ``params``, resolve the image spec (refusing a size outside ``sizes``) and
        the classes; returns the spec."""
        self.params = params
        self.image_spec, self._classes = _resolve("discriminator", params, image_spec, sizes)
        return self.image_spec

    @property
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        """True when built with ``conditional = true``: called as ``D(images, y)``."""
        return self._classes > 0

    @property
    def classes(self) -> int:
        """How many classes the labels have (0: unconditional)."""
        return self._classes
