"""What every component shares, whatever its kind: :class:`Component` (params, state,
requirements, the per-step hook), :class:`ComponentState`, :class:`Requirement` and
:class:`ImageSpec`, the shape (and classes) of a dataset's images."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch


@attrs.frozen
class ImageSpec:
    """Shape of the images a dataset yields and a generator must produce (NCHW), and the
    number of classes the dataset labels them with (0: unlabelled).

    ``size`` is the height, and the width too unless ``width`` says otherwise (non-square
    images: ``ImageSpec(3, 32, width=64)`` is 32 pixels high and 64 wide). A conditional
    network is built for ``classes`` classes; an unconditional one ignores the field. Two
    specs with the same shape and different ``classes`` describe the same images
    (:meth:`same_images`)."""

    channels: int
    size: int
    classes: int = 0
    width: int = attrs.field(default=attrs.Factory(lambda self: self.size, takes_self=True))

    @property
    def height(self) -> int:
        """The images' height (``size``)."""
        return self.size

    @property
    def square(self) -> bool:
        """True when the images are as wide as they are high."""
        return self.width == self.size

    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``."""
        return (self.channels, self.size, self.width)

    def pixels(self) -> str:
        """``"32x32"`` or, for non-square images, ``"32x64"`` (height x width)."""
        return f"{self.size}x{self.width}"

    def same_images(self, other: ImageSpec) -> bool:
        """True when ``other`` describes images of the same shape (classes aside)."""
        return self.shape() == other.shape()


@attrs.frozen
class ComponentState:
    """What a stateful component keeps across a checkpoint: tensors (stored in the
    checkpoint as ``state/<table>/<name>``) and JSON-able values (stored under its recipe
    table name). Resume gives back exactly what was saved."""

    tensors: dict[str, torch.Tensor] = attrs.field(factory=dict)
    values: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Requirement:
    """One thing a component needs from the recipe it is used in: ``what`` (``"run.d_steps
    >= 5"``), whether the recipe ``met`` it, ``why`` (one short sentence), and whether an
    unmet one is only a warning (``warn``) or refuses the recipe (the default)."""

    what: str
    met: bool
    why: str = ""
    warn: bool = False

    def message(self, table: str, name: str) -> str:
        """The one line reported when the requirement is not met."""
        why = f" ({self.why})" if self.why else ""
        return f"[{table}] {name!r} needs {self.what}{why}"


def requires(what: str, met: bool, why: str = "", warn: bool = False) -> Requirement:
    """Shorthand for :class:`Requirement` in a component's :meth:`Component.requirements`."""
    return Requirement(what, bool(met), why, warn)


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

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        """What this component, with ``params``, needs from the resolved ``recipe`` it is
        used in (``recipe.run.d_steps``, ``recipe["discriminator"].params``, ...): checked
        when the recipe is built, before anything runs. An unmet requirement refuses the
        recipe with one line naming the table, or is a warning printed when the run starts
        (``warn=True``). Default: none."""
        return []

    def figures(self) -> Mapping[str, float | torch.Tensor]:
        """Extra figures to log (``{"loss/gp": tensor}``), read on every logged step
        (``run.log_every``) and logged beside the losses: return the latest values, as
        device tensors if you like (reading them back is the trainer's one sync per logged
        step). Default: none."""
        return {}
