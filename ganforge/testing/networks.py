"""Small networks the kit trains the component under test with: an MLP generator and an
MLP discriminator that fit any :class:`~ganforge.ImageSpec` (conditional when asked).

They are ordinary components, also handy as partners in a plugin's own tests. The kit
registers them for the duration of a check as ``testkit:mlp`` (kinds generator and
discriminator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
import torch
from torch import nn

from ..core.interfaces import Discriminator, Generator, ImageSpec, resolve_image_spec
from ..core.params import param
from ..core.registry import Registry
from ..nn.conditioning import class_weights, label_classes

#: The plugin name (qualifier) and short name the kit registers its partner networks as,
#: and the name a recipe uses for them.
PARTNER_PLUGIN, PARTNER_SHORT = "testkit", "mlp"
PARTNER = f"{PARTNER_PLUGIN}:{PARTNER_SHORT}"
#: The origin (label in messages) the kit registers them under.
ORIGIN = "plugin 'testkit' (ganforge.testing)"

_positive = attrs.validators.gt(0)


class TinyGenerator(Generator):
    """An MLP generator for any image shape: z (and the one-hot label) -> Tanh images."""

    @attrs.frozen
    class Params:
        """Width and conditioning of the MLP generator."""

        latent_dim: int = param(8, "size of z", validator=_positive)
        hidden: int = param(32, "hidden units", validator=_positive)
        conditional: bool = param(False, "G(z, y): the one-hot label concatenated to z")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        self._spec = resolve_image_spec("generator", None, None, image_spec)
        self._classes = label_classes("generator", params.conditional, self._spec.classes)
        c, s = self._spec.channels, self._spec.size
        self.net = nn.Sequential(nn.Linear(params.latent_dim + self._classes, params.hidden),
                                 nn.ReLU(), nn.Linear(params.hidden, c * s * s), nn.Tanh())

    @property
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        return self._classes > 0

    @property
    def latent_dim(self) -> int:
        return self.params.latent_dim

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        device = device if device is not None else generator.device
        return torch.randn(n, self.params.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self._classes:
            weights = class_weights("generator", y, self._classes, z.shape[0], z.dtype)
            z = torch.cat([z, weights], dim=1)
        return self.net(z).reshape(-1, *self._spec.shape())


class TinyDiscriminator(Discriminator):
    """An MLP discriminator for any image shape (a projection discriminator when
    conditional: ``head(h) + <embed(y), h>``; with ``aux_classifier``, class logits too:
    ``(N, 1 + classes)``)."""

    @attrs.frozen
    class Params:
        """Width and conditioning of the MLP discriminator."""

        hidden: int = param(32, "hidden units", validator=_positive)
        conditional: bool = param(False, "D(images, y): projection of the label")
        aux_classifier: bool = param(False, "an auxiliary classifier head (ACGAN): output "
                                     "(N, 1 + classes)")

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        spec = resolve_image_spec("discriminator", None, None, image_spec)
        self._classes = label_classes("discriminator", params.conditional, spec.classes)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(spec.channels * spec.size ** 2,
                                                          params.hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(params.hidden, 1)
        self.embed = nn.Linear(self._classes, params.hidden, bias=False) \
            if self._classes else None
        head_classes = label_classes("discriminator", params.aux_classifier, spec.classes)
        self.classify = nn.Linear(params.hidden, head_classes) if head_classes else None

    @property
    def conditional(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        return self._classes > 0

    @property
    def aux_classifier(self) -> bool:  # type: ignore[override]  # per instance
        return self.classify is not None

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(images)
        out = self.head(h).flatten()
        if self.embed is not None:
            weights = class_weights("discriminator", y, self._classes, h.shape[0], h.dtype)
            out = out + (self.embed(weights) * h).sum(1)
        if self.classify is not None:
            return torch.cat([out[:, None], self.classify(h)], dim=1)
        return out


@contextlib.contextmanager
def partners_registered(registry: Registry) -> Iterator[str]:
    """Register :class:`TinyGenerator` and :class:`TinyDiscriminator` as :data:`PARTNER`
    in ``registry`` for the duration of the block (unless they are there already), and
    yield the name to write in a recipe."""
    if ("generator", PARTNER) in registry and ("discriminator", PARTNER) in registry:
        yield PARTNER
        return
    with registry.registering_as(ORIGIN, PARTNER_PLUGIN):
        registry.register("generator", PARTNER_SHORT, TinyGenerator)
        registry.register("discriminator", PARTNER_SHORT, TinyDiscriminator)
    try:
        yield PARTNER
    finally:
        registry.remove_origin(ORIGIN)

